// Benchmark: the openb trace through the real kube-scheduler with the Tessera extender (DESIGN.md, "live packing"). The
// trace's GPU nodes become KWOK nodes in fraction mode (their CPU, memory, GPU count and model as GFD labels); the pods
// arrive in the simulator's order for the seed until 100 % of GPU capacity has arrived, pre-mutated as the webhook
// would leave them; kube-scheduler, configured as manifests/base/scheduler.yaml ships it (knobs below override one
// thing at a time), schedules them through the extender, which runs as its own process without a policy (the trace has
// no tenants, pools or quotas, so a policy could only constrain what the simulator does not). When every pod is bound
// or unschedulable and none is bound for 30 s, the unallocated GPU % from the pods' assignments is set beside the
// simulator's figure for the same arrivals. Goal: at most 0.5 points more.
//
// --scale N replicates the trace N times (nodes and pods, core/simulation/trace.ts replicateTrace) and compares with the
// simulator on the same scaled trace: --scale 5 is 6,065 KWOK nodes. The extender's resident memory (now and peak,
// from /proc) and its V8 heap in use (its /metrics) are printed with the wall time.
//
//   npm run bench:live -- --seed 42 [--snapshot FILE] [--nodes 150] [--scale 5] [--json FILE]
//     [--percentage P] [--parallelism N] [--weight W] [--resource-scores on|off] [--cpu-pods extender|kube]
//     [--http-timeout 2s] [--profile warm|cold]
//
// Exits non-zero on errors only; a missed goal is reported, not failed.

import { readFileSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { takeSnapshot, writeSnapshot } from '../../cli/snapshot.ts';
import { checkInvariants } from '../../core/invariants/check.ts';
import type { KubePod } from '../../core/kube-objects.ts';
import { DEFAULT_STRATEGY, strategyNamed } from '../../core/scoring/strategy-registry.ts';
import { parseTraceNodes, parseTracePods, replicateTrace } from '../../core/simulation/trace.ts';
import { WatchedResource } from '../../server/watched-resource.ts';
import { startCluster } from '../controlplane/cluster.ts';
import { shippedSchedulerConfig } from '../controlplane/scheduler-config.ts';
import { startExtenderProcess } from './extender-process.ts';
import { createFakeNode, nodeSchedulable } from '../e2e/stack.ts';
import {
  assignedMilli,
  benchSchedulerConfig,
  liveScope,
  NAMESPACE,
  PROFILE_NAMESPACE,
  PROFILE_SCHEDULER,
  simulatedFigures,
  tracePod,
  traceNode,
  type SchedulerKnobs,
} from './live-trace.ts';

const DATA = fileURLToPath(new URL('../../../shared/data/alibaba-openb/', import.meta.url));
const GOAL_POINTS = 0.5;

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '42' },
    snapshot: { type: 'string' },
    nodes: { type: 'string' },
    scale: { type: 'string', default: '1' },
    'node-list': { type: 'string', default: join(DATA, 'openb_node_list_gpu_node.csv') },
    pods: { type: 'string', default: join(DATA, 'openb_pod_list_default.csv') },
    json: { type: 'string' },
    percentage: { type: 'string' },
    parallelism: { type: 'string' },
    weight: { type: 'string' },
    'resource-scores': { type: 'string' },
    // The trace puts CPU-only pods on GPU nodes, and the simulator places them with Tessera's strategy; on a cluster
    // GPU nodes are tainted and such pods stay off them. So by default the extender sees them here too.
    'cpu-pods': { type: 'string', default: 'extender' },
    'http-timeout': { type: 'string' },
    profile: { type: 'string', default: 'warm' },
    concurrency: { type: 'string', default: '32' },
    'timeout-minutes': { type: 'string', default: '45' },
  },
  strict: true,
});

function int(name: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} ${text}: expected a whole number >= ${min}`);
  return n;
}

function oneOf<T extends string>(name: string, text: string | undefined, allowed: readonly T[]): T | undefined {
  if (text === undefined) return undefined;
  if (!allowed.includes(text as T)) throw new Error(`--${name} ${text}: expected one of ${allowed.join(', ')}`);
  return text as T;
}

const seed = int('seed', values.seed, 0)!;
const nodeLimit = int('nodes', values.nodes, 1) ?? null;
const scaleFactor = int('scale', values.scale, 1)!;
const concurrency = int('concurrency', values.concurrency, 1)!;
const profile = oneOf('profile', values.profile, ['warm', 'cold'] as const)!;
const timeoutMs = int('timeout-minutes', values['timeout-minutes'], 1)! * 60_000;
const knobs: SchedulerKnobs = {
  ...(values.percentage !== undefined ? { percentage: int('percentage', values.percentage, 0)! } : {}),
  ...(values.parallelism !== undefined ? { parallelism: int('parallelism', values.parallelism, 1)! } : {}),
  ...(values.weight !== undefined ? { weight: int('weight', values.weight, 1)! } : {}),
  ...(values['resource-scores'] !== undefined
    ? { resourceScores: oneOf('resource-scores', values['resource-scores'], ['on', 'off'] as const)! }
    : {}),
  ...(values['http-timeout'] !== undefined ? { httpTimeout: values['http-timeout'] } : {}),
  ...(values['cpu-pods'] !== undefined
    ? { cpuPods: oneOf('cpu-pods', values['cpu-pods'], ['extender', 'kube'] as const)! }
    : {}),
};

const started = performance.now();
const elapsed = (from = started): number => (performance.now() - from) / 1000;
const log = (line: string): void => console.log(`[${elapsed().toFixed(0).padStart(4)} s] ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function parallel<T>(items: readonly T[], width: number, work: (item: T, i: number) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        await work(items[i]!, i);
      }
    }),
  );
}

/** Retries what a loaded API server may refuse for a moment (429, 5xx, connection resets); creates are idempotent here
 * because an AlreadyExists after a retry means the first attempt landed. */
async function create(what: string, call: () => Promise<unknown>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await call();
      return;
    } catch (e) {
      const code = (e as { code?: number }).code;
      if (code === 409 && attempt > 0) return;
      if (attempt >= 5 || (code !== undefined && code < 500 && code !== 429)) throw new Error(`${what}: ${String(e)}`);
      await sleep(200 * 2 ** attempt);
    }
  }
}

async function retry<T>(what: string, call: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (e) {
      if (attempt >= 4) throw new Error(`${what}: ${String(e)}`);
      await sleep(2000 * (attempt + 1));
    }
  }
}

async function waitForNodes(core: CoreV1Api, names: readonly string[]): Promise<void> {
  const want = new Set(names);
  const deadline = Date.now() + 600_000;
  for (;;) {
    const ready = (await core.listNode()).items.filter((n) => want.has(n.metadata?.name ?? '') && nodeSchedulable(n));
    if (ready.length === want.size) return;
    if (Date.now() > deadline) throw new Error(`${want.size - ready.length} nodes still not Ready after 10 minutes`);
    await sleep(1000);
  }
}

const scheduledCondition = (p: V1Pod) => p.status?.conditions?.find((c) => c.type === 'PodScheduled');

/** The run's pods as a watch sees them (one list, then events), so that waiting costs the API server no lists. */
class PodWatch {
  readonly pods: WatchedResource<V1Pod>;
  constructor(kc: KubeConfig) {
    const core = kc.makeApiClient(CoreV1Api);
    this.pods = new WatchedResource<V1Pod>(
      kc,
      `/api/v1/namespaces/${NAMESPACE}/pods`,
      () => core.listNamespacedPod({ namespace: NAMESPACE }),
      pino({ level: 'warn' }),
      'bench pods',
    );
  }
}

/**
 * Waits until every pod is bound or unschedulable (PodScheduled=False, reason Unschedulable; a bind error's
 * SchedulerError is retried, so it does not count) and no pod has been created, bound or deleted for `quietMs`. Only
 * those count: at 6,065 nodes kube-scheduler retried the unschedulable pods for 9 more minutes after the last bind,
 * rewriting only the node counts in their messages.
 */
async function waitForCompletion(watch: PodWatch, total: number, quietMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let quietSince = Date.now();
  let lastReport = 0;
  for (;;) {
    const pods = watch.pods.list();
    const unbound = pods.filter((p) => !p.spec?.nodeName);
    const settled =
      pods.length === total &&
      unbound.every((p) => {
        const c = scheduledCondition(p);
        return c?.status === 'False' && c.reason === 'Unschedulable';
      });
    const now = `${pods.length}/${unbound.length}`;
    if (now !== last) {
      last = now;
      quietSince = Date.now();
    }
    if (Date.now() - lastReport > 15_000) {
      lastReport = Date.now();
      log(`${pods.length - unbound.length} of ${total} pods bound, ${unbound.length} not bound`);
    }
    if (settled && Date.now() - quietSince >= quietMs) return;
    if (Date.now() > deadline)
      throw new Error(`not settled after ${timeoutMs / 60_000} minutes: ${unbound.length} pods unbound`);
    await sleep(1000);
  }
}

/** Bind outcomes and expired assumptions from the extender's /metrics. */
async function extenderCounters(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const bind = /^tessera_extender_binds_total\{outcome="(\w+)"\} (\S+)$/.exec(line);
    if (bind) out[`binds ${bind[1]}`] = Number(bind[2]);
    const other = /^(tessera_extender_(?:assumptions_expired|bind_rollbacks)_total) (\S+)$/.exec(line);
    if (other) out[other[1]!.replace('tessera_extender_', '')] = Number(other[2]);
    // Binds the extender took longer than 1 s to answer (in process: the reservation and the API write).
    const bucket = /^tessera_extender_request_duration_seconds_bucket\{(.*)\} (\S+)$/.exec(line);
    if (bucket && /verb="bind"/.test(bucket[1]!)) {
      const le = /le="([^"]+)"/.exec(bucket[1]!)?.[1];
      if (le === '1') out['binds <= 1 s'] = (out['binds <= 1 s'] ?? 0) + Number(bucket[2]);
      if (le === '+Inf') out['binds all'] = (out['binds all'] ?? 0) + Number(bucket[2]);
    }
  }
  const all = out['binds all'] ?? 0;
  out['binds > 1 s'] = all - (out['binds <= 1 s'] ?? 0);
  delete out['binds all'];
  delete out['binds <= 1 s'];
  return out;
}

/** Pods that kube-scheduler reported FailedScheduling for at least once, split by how they ended. */
async function failedSchedulingEvents(
  core: CoreV1Api,
  boundNames: ReadonlySet<string>,
): Promise<{ events: number; retriedBound: number; bindErrors: number; kinds: Record<string, number> }> {
  const pods = new Set<string>();
  const kinds: Record<string, number> = {};
  let events = 0;
  let bindErrors = 0;
  let cont: string | undefined;
  do {
    const page = await core.listNamespacedEvent({
      namespace: NAMESPACE,
      fieldSelector: 'reason=FailedScheduling',
      limit: 1000,
      ...(cont ? { _continue: cont } : {}),
    });
    for (const e of page.items) {
      const count = e.series?.count ?? e.count ?? 1;
      events += count;
      const message = e.message ?? '';
      if (/bind/i.test(message)) bindErrors += count;
      // The message without numbers and names: what kind of failure it was.
      const kind = message
        .replace(/\d+/g, 'N')
        .replace(/"[^"]*"/g, '"…"')
        .slice(0, 120);
      kinds[kind] = (kinds[kind] ?? 0) + count;
      if (e.involvedObject?.name) pods.add(e.involvedObject.name);
    }
    cont = page.metadata?._continue || undefined;
  } while (cont);
  return { events, retriedBound: [...pods].filter((p) => boundNames.has(p)).length, bindErrors, kinds };
}

/** The extender's V8 heap in use, in MiB (its /metrics): what it holds, beside RSS, which also counts what V8 has not
 * returned yet. */
async function extenderHeapUsedMiB(port: number): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = /^tessera_extender_nodejs_heap_size_used_bytes (\S+)$/m.exec(text);
  return m ? Number(m[1]) / 2 ** 20 : null;
}

/** A process's resident memory now and at its peak (VmRSS, VmHWM in /proc/PID/status), in MiB. */
function residentMemory(pid: number | undefined): { rssMiB: number; peakMiB: number } | null {
  if (pid === undefined) return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------------------------

const { nodes: traceNodes, pods: tracePods } = replicateTrace(
  parseTraceNodes(readFileSync(values['node-list'], 'utf8')),
  parseTracePods(readFileSync(values.pods, 'utf8')),
  scaleFactor,
);
const scope = liveScope(traceNodes, tracePods, seed, nodeLimit);
const strategy = strategyNamed(DEFAULT_STRATEGY);
log(
  `seed ${seed}${scaleFactor > 1 ? `, trace x${scaleFactor}` : ''}: ${scope.nodes.length} GPU nodes (${scope.plan.capacityMilli / 1000} GPUs), ${scope.arrivals.length} arrivals until 100 % of GPU capacity`,
);
const sim = simulatedFigures(scope, tracePods, strategy);
log(
  `simulator (${strategy.name}): ${sim.sameArrivals.toFixed(2)} % unallocated after the same arrivals, ${sim.failed} unschedulable; tessera simulate's binned figure at 100 %: ${sim.binned100.toFixed(2)} % (${sim.seconds.toFixed(1)} s)`,
);

const cluster = await startCluster({
  controllerManager: true,
  // KWOK renews each node's Lease every quarter of its duration: 1,213 nodes at the default 40 s would be 120 writes/s
  // on a 2-core machine. The node-lifecycle controller is stopped once the nodes are Ready (below), so nothing reads
  // the Leases during the run.
  kwok: { leaseDurationSeconds: 120 },
  log: (l) => log(l),
});
let extender: ChildProcess | null = null;
let watch: PodWatch | null = null;
try {
  const admin = new KubeConfig();
  admin.loadFromString(cluster.kubeconfigText('admin'));
  const core = admin.makeApiClient(CoreV1Api);

  const nodesStarted = performance.now();
  await parallel(scope.nodes, concurrency, async (n) => {
    const { node, resources } = traceNode(n);
    await create(`node ${n.name}`, () => createFakeNode(core, node, resources, false));
  });
  await waitForNodes(
    core,
    scope.nodes.map((n) => n.name),
  );
  const nodesSeconds = elapsed(nodesStarted);
  log(`${scope.nodes.length} nodes Ready (KWOK) and untainted in ${nodesSeconds.toFixed(1)} s`);
  // Nothing may taint a node while the 2-core machine is saturated and KWOK's Lease renewals lag.
  await cluster.stopControllerManager();

  for (const namespace of [NAMESPACE, ...(profile === 'warm' ? [PROFILE_NAMESPACE] : [])]) {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'default' } } });
  }
  let profileSeconds = 0;
  if (profile === 'warm') {
    const profileStarted = performance.now();
    await parallel(scope.arrivals, concurrency, (p, i) =>
      create(`profile pod ${i}`, () =>
        core.createNamespacedPod({ namespace: PROFILE_NAMESPACE, body: tracePod(p, i, PROFILE_SCHEDULER) }),
      ),
    );
    profileSeconds = elapsed(profileStarted);
    log(`${scope.arrivals.length} profile pods (never scheduled) created in ${profileSeconds.toFixed(1)} s`);
  }

  const ext = await startExtenderProcess(cluster);
  extender = ext.child;
  const { yaml, effective } = benchSchedulerConfig(shippedSchedulerConfig(), ext.port, knobs);
  log(
    `kube-scheduler as shipped${Object.keys(knobs).length > 0 ? ` with ${JSON.stringify(knobs)}` : ''}: ${Object.entries(
      effective,
    )
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}; extender profile ${profile}`,
  );
  watch = new PodWatch(admin);
  await watch.pods.start();
  const schedulingStarted = performance.now();
  await cluster.startScheduler(yaml);
  // Submitted one at a time while kube-scheduler runs: it queues pods in the order its watch delivers them (creation
  // order), so the arrivals reach it in the simulator's order. (Pods created before it starts reach it through its
  // initial list, in no particular order.)
  for (const [i, p] of scope.arrivals.entries())
    await create(`pod ${i}`, () => core.createNamespacedPod({ namespace: NAMESPACE, body: tracePod(p, i) }));
  const podsSeconds = elapsed(schedulingStarted);
  log(`${scope.arrivals.length} pods submitted in order in ${podsSeconds.toFixed(1)} s`);
  await waitForCompletion(watch, scope.arrivals.length);
  const schedulingSeconds = elapsed(schedulingStarted);

  // Measured from one listing of the API (the snapshot's), not from any server's memory.
  const snapshot = await retry('snapshot', () => takeSnapshot(admin));
  const pods = snapshot.pods.filter((p) => p.metadata?.namespace === NAMESPACE) as V1Pod[];
  const capacity = scope.plan.capacityMilli;
  let allocated = 0;
  let bound = 0;
  let unschedulable = 0;
  let gpuPodsWithoutAssignment = 0;
  const boundNames = new Set<string>();
  for (const p of pods) {
    if (p.spec?.nodeName) {
      bound++;
      boundNames.add(p.metadata!.name!);
      allocated += assignedMilli(p as KubePod);
      const gpu = p.spec.containers.some((c) => c.resources?.limits?.['tessera.io/gpu-milli'] !== undefined);
      if (gpu && p.metadata?.annotations?.['tessera.io/assignment'] === undefined) gpuPodsWithoutAssignment++;
    } else if (scheduledCondition(p)?.status === 'False') unschedulable++;
  }
  const live = 100 - (allocated / capacity) * 100;
  const counters = await retry('extender metrics', () => extenderCounters(ext.port));
  const events = await retry('events', () => failedSchedulingEvents(core, boundNames));
  const violations = checkInvariants(snapshot, null);
  if (values.snapshot) {
    writeSnapshot(values.snapshot, snapshot);
    log(`snapshot written to ${values.snapshot}`);
  }
  const diff = live - sim.sameArrivals;
  const wall = elapsed();
  const resident = residentMemory(extender?.pid);
  const heapUsedMiB = await retry('extender heap', () => extenderHeapUsedMiB(ext.port));
  const extenderMemory = resident === null ? null : { ...resident, heapUsedMiB };

  const rows: [string, string][] = [
    ['seed', String(seed)],
    ['trace scale', `x${scaleFactor}`],
    ['GPU nodes (GPUs)', `${scope.nodes.length} (${capacity / 1000})`],
    ['pods submitted', String(scope.arrivals.length)],
    ['bound', String(bound)],
    ['unschedulable', `${unschedulable} (simulator: ${sim.failed})`],
    ['live unallocated GPU %', live.toFixed(2)],
    ['simulator, same arrivals %', sim.sameArrivals.toFixed(2)],
    ['difference (points)', `${diff >= 0 ? '+' : ''}${diff.toFixed(2)}`],
    [`goal (<= ${GOAL_POINTS})`, diff <= GOAL_POINTS ? 'PASS' : 'MISS'],
    ['tessera simulate @100 % (binned)', sim.binned100.toFixed(2)],
    ...Object.entries(effective),
    [
      'extender profile',
      profile === 'warm'
        ? 'warm (the arrivals, held by an unserved scheduler name)'
        : 'cold (learned from the pods as they arrive)',
    ],
    [
      'bind race',
      `${Object.entries(counters)
        .map(([k, v]) => `${k} ${v}`)
        .join(
          ', ',
        )}; FailedScheduling events ${events.events} (bind errors ${events.bindErrors}), pods retried then bound ${events.retriedBound}`,
    ],
    [
      'invariant violations',
      `${violations.length}${gpuPodsWithoutAssignment > 0 ? `; GPU pods bound without assignment ${gpuPodsWithoutAssignment}` : ''}`,
    ],
    [
      'extender memory',
      extenderMemory === null
        ? 'unknown (no /proc)'
        : `RSS ${extenderMemory.rssMiB.toFixed(0)} MiB, peak ${extenderMemory.peakMiB.toFixed(0)} MiB, V8 heap in use ${extenderMemory.heapUsedMiB?.toFixed(0) ?? 'unknown'} MiB`,
    ],
    [
      'wall time',
      `${wall.toFixed(0)} s (nodes ${nodesSeconds.toFixed(0)} s, profile pods ${profileSeconds.toFixed(0)} s, submitting and scheduling ${schedulingSeconds.toFixed(0)} s = ${(scope.arrivals.length / schedulingSeconds).toFixed(0)} pods/s, of which submitting ${podsSeconds.toFixed(0)} s)`,
    ],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(`\nlive packing: the openb trace through kube-scheduler + the Tessera extender (${strategy.name})`);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  for (const [kind, n] of Object.entries(events.kinds)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 5))
    console.log(`  FailedScheduling x${n}: ${kind}`);
  for (const v of violations.slice(0, 10)) console.log(`  violation: ${v.invariant} ${v.subject}: ${v.message}`);
  if (values.json)
    writeFileSync(
      values.json,
      `${JSON.stringify(
        {
          seed,
          scale: scaleFactor,
          extenderMemory,
          nodes: scope.nodes.length,
          gpus: capacity / 1000,
          submitted: scope.arrivals.length,
          bound,
          unschedulable,
          live,
          simulated: sim.sameArrivals,
          simulatedUnschedulable: sim.failed,
          simulatedBinned100: sim.binned100,
          difference: diff,
          pass: diff <= GOAL_POINTS,
          knobs,
          effective,
          counters,
          events,
          violations: violations.length,
          profile,
          seconds: {
            wall,
            nodes: nodesSeconds,
            profilePods: profileSeconds,
            submitting: podsSeconds,
            scheduling: schedulingSeconds,
          },
        },
        null,
        2,
      )}\n`,
    );
  if (violations.length > 0 || gpuPodsWithoutAssignment > 0 || bound + unschedulable !== scope.arrivals.length)
    process.exitCode = 1;
} finally {
  await watch?.pods.stop();
  if (extender && extender.exitCode === null) {
    const child = extender;
    child.kill('SIGTERM');
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(5000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  await cluster.stop();
}
