// Benchmark: scheduling throughput of the same kube-scheduler binary with and without the Tessera extender. 1,000 fake
// GPU nodes (8 GPUs each, run by KWOK, so bound pods go Running as on a live cluster), 2,000 pods asking for one GPU
// each, created while no scheduler runs; then the scheduler starts and we time until every pod is bound. The first
// phase's pods are deleted before the second, so that both start from empty nodes. Goal: the extender keeps at least
// 0.7 of the pods/s, in whole and fraction mode (BENCH_GPU_MODE=fraction). Where the time goes is printed too: CPU
// seconds per process in each phase and per pod (from /proc), what the rest of the machine used meanwhile (the noise),
// and the extender's own time per call and bind outcomes.

import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { startCluster } from '../controlplane/cluster.ts';
import { createFakeNode, schedulerConfig, waitForNodesReady } from '../e2e/stack.ts';
import { apiserverCounters, type Counters, grewBy } from './apiserver-requests.ts';
import { startExtenderProcess } from './extender-process.ts';
import { type PhaseProfile, startPhaseProfile } from './phase-profile.ts';

const NODES = Number(process.env.BENCH_NODES ?? 1000);
const PODS = Number(process.env.BENCH_PODS ?? 2000);
/**
 * `whole` (default): whole-GPU nodes, pods ask for nvidia.com/gpu: 1, and a bind is a plain Binding. `fraction`: the
 * nodes are Tessera fraction nodes, pods ask for half a GPU (tessera.io/gpu-milli: 500), and every bind carries the
 * assignment annotations.
 */
const FRACTION = process.env.BENCH_GPU_MODE === 'fraction';
/** The extender keeps at least this share of kube-scheduler's pods/s alone (issue 21; it was 0.5). */
const GOAL = 0.7;
/** BENCH_PROFILE=<dir>: a perf profile of every process per phase (phase-profile.ts), the extender's --cpu-prof too. */
const PROFILE_DIR = process.env.BENCH_PROFILE;
const GPU_ASK: Record<string, string> = FRACTION ? { 'tessera.io/gpu-milli': '500' } : { 'nvidia.com/gpu': '1' };

async function parallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

async function createPods(core: CoreV1Api, namespace: string, schedulerName: string): Promise<void> {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'default' } } });
  const names = Array.from({ length: PODS }, (_, i) => `p-${i}`);
  await parallel(names, 32, (name) =>
    core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name },
        spec: {
          schedulerName,
          containers: [
            {
              name: 'c',
              image: 'registry.example/x',
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: GPU_ASK },
            },
          ],
        },
      },
    }),
  );
}

async function timeUntilBound(core: CoreV1Api, namespace: string): Promise<number> {
  const started = performance.now();
  for (;;) {
    // Only the pods still unbound, one at a time with the remaining count, so that measuring costs the API server
    // almost nothing while the scheduler works.
    const page = await core.listNamespacedPod({ namespace, fieldSelector: 'spec.nodeName=', limit: 1 });
    const unbound = page.items.length + (page.metadata?.remainingItemCount ?? 0);
    if (unbound === 0) return (performance.now() - started) / 1000;
    if (performance.now() - started > 600_000)
      throw new Error(`${unbound} of ${PODS} pods still unbound after 10 minutes`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** CPU seconds (user + system) a process has used, from /proc; 0 when it is gone. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}

/** The processes whose command line mentions `marker` (the cluster's directory), by program name. */
function processesOf(marker: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.includes(marker))) found.set(basename(argv[0]!), Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Busy and total CPU seconds of the whole machine, from /proc/stat. */
function machineSeconds(): { busy: number; total: number } {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const n = ticks.map(Number);
  const idle = n[3]! + n[4]!; // idle + iowait
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / 100, total: total / 100 };
}

let server = '';
let token = '';

/**
 * Waits until KWOK has caught up with the first phase (no pod deletions or status writes for 3 s, at most a minute):
 * its late DELETEs of pods already gone and its status patches would otherwise be counted against the second phase.
 */
async function quiescent(): Promise<void> {
  const busy = (c: Counters) => (c.get('DELETE pods') ?? 0) + (c.get('PATCH pods/status') ?? 0);
  const deadline = Date.now() + 60_000;
  let last = busy(await apiserverCounters(server, token));
  let stableSince = Date.now();
  while (Date.now() < deadline && Date.now() - stableSince < 3000) {
    await new Promise((r) => setTimeout(r, 500));
    const now = busy(await apiserverCounters(server, token));
    if (now !== last) stableSince = Date.now();
    last = now;
  }
}

/** The phases' profiles, reported once the cluster is gone (reading the samples takes a while). */
const profiles: { phase: string; profile: PhaseProfile; pids: Map<string, number> }[] = [];

interface Accounted<T> {
  readonly result: T;
  /** CPU seconds of the control plane's processes (and the extender) over the phase. */
  readonly ours: number;
  readonly line: string;
  /** CPU milliseconds per pod of each process. */
  readonly perPod: string;
  /** What the API server served during the phase (requests by verb and resource, watch events by kind). */
  readonly requests: string;
}

/** CPU use of the control plane (and the extender) over one phase, and of everything else on the machine. */
async function accounted<T>(
  phase: string,
  marker: string,
  extra: Record<string, number>,
  work: () => Promise<T>,
): Promise<Accounted<T>> {
  const counters = (): Promise<Counters> => apiserverCounters(server, token).catch(() => new Map());
  const requestsBefore = await counters();
  const named = new Set(Object.values(extra));
  const pids = new Map([...[...processesOf(marker)].filter(([, pid]) => !named.has(pid)), ...Object.entries(extra)]);
  const before = new Map([...pids].map(([name, pid]) => [name, cpuSeconds(pid)]));
  const machine = machineSeconds();
  const profile = PROFILE_DIR ? startPhaseProfile(PROFILE_DIR, `${FRACTION ? 'fraction' : 'whole'}-${phase}`) : null;
  const result = await work();
  // kube-scheduler starts inside `work`: it counts from zero.
  for (const [name, pid] of processesOf(marker)) if (!pids.has(name) && !named.has(pid)) pids.set(name, pid);
  const used = [...pids].map(([name, pid]) => [name, cpuSeconds(pid) - (before.get(name) ?? 0)] as const);
  const after = machineSeconds();
  const requests = grewBy(requestsBefore, await counters(), PODS);
  if (profile) {
    await profile.stop();
    profiles.push({ phase, profile, pids: new Map(pids) });
  }
  const ours = used.reduce((a, [, s]) => a + s, 0);
  const busy = after.busy - machine.busy;
  const line = [
    ...used.sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, s]) => `${name} ${s.toFixed(1)} s`),
    `other work on the machine ${Math.max(0, busy - ours).toFixed(1)} s`,
    `machine ${((100 * busy) / (after.total - machine.total)).toFixed(0)} % busy`,
  ].join(', ');
  const perPod = used.map(([name, s]) => `${name} ${((1000 * s) / PODS).toFixed(2)} ms`).join(', ');
  return { result, ours, line, perPod, requests };
}

/** Mean time per call inside the extender, by verb, and bind outcomes, from its own metrics. */
function extenderFigures(metrics: string): string {
  const total = (kind: 'sum' | 'count', verb: string) =>
    [
      ...metrics.matchAll(
        new RegExp(`^tessera_extender_request_duration_seconds_${kind}\\{verb="${verb}"[^}]*\\} (\\S+)$`, 'gm'),
      ),
    ]
      .map((m) => Number(m[1]))
      .reduce((a, b) => a + b, 0);
  const binds = [...metrics.matchAll(/^tessera_extender_binds_total\{outcome="(\w+)"\} (\S+)$/gm)]
    .map((m) => `${m[1]} ${m[2]}`)
    .join(', ');
  const verbs = ['filter', 'prioritize', 'bind']
    .map(
      (v) => `${v} ${((1000 * total('sum', v)) / Math.max(1, total('count', v))).toFixed(2)} ms x ${total('count', v)}`,
    )
    .join(', ');
  const connections = /^tessera_extender_connections_total (\S+)$/m.exec(metrics)?.[1] ?? '?';
  return `${verbs}; binds: ${binds}; connections kube-scheduler opened: ${connections}`;
}

if (!existsSync('/proc/stat')) throw new Error('this benchmark reads CPU time from /proc (Linux)');
const cluster = await startCluster({ controllerManager: true, kwok: true, log: (l) => console.log(l) });
try {
  const admin = new KubeConfig();
  admin.loadFromString(cluster.kubeconfigText('admin'));
  server = admin.getCurrentCluster()!.server;
  token = admin.getCurrentUser()!.token!;
  const core = admin.makeApiClient(CoreV1Api);
  console.log(`creating ${NODES} GPU nodes`);
  const names = Array.from({ length: NODES }, (_, i) => `gpu-${String(i).padStart(4, '0')}`);
  await parallel(names, 16, (name) =>
    createFakeNode(
      core,
      {
        metadata: {
          name,
          labels: {
            'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3',
            'nvidia.com/gpu.count': '8',
            'nvidia.com/gpu.memory': '81559',
            'nvidia.com/gpu.sharing-strategy': 'none',
            ...(FRACTION ? { 'tessera.io/sharing': 'fraction' } : {}),
          },
        },
      },
      {
        cpu: '96',
        memory: '1Ti',
        pods: '110',
        ...(FRACTION ? { 'tessera.io/gpu-milli': '8000' } : { 'nvidia.com/gpu': '8' }),
      },
      false,
    ),
  );
  await waitForNodesReady(core, names, 300_000);

  console.log(`baseline: ${PODS} pods, kube-scheduler alone`);
  await createPods(core, 'baseline', 'default-scheduler');
  const percentage = process.env.BENCH_PERCENTAGE ? `percentageOfNodesToScore: ${process.env.BENCH_PERCENTAGE}\n` : '';
  const baseline = await accounted('alone', cluster.dir, {}, async () => {
    await cluster.startScheduler(
      `apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n${percentage}profiles:\n- schedulerName: default-scheduler\n`,
    );
    return timeUntilBound(core, 'baseline');
  });
  const alone = baseline.result;
  await cluster.stopScheduler();
  // Both phases start from the same cluster: empty nodes, no bound pods in kube-scheduler's cache or the extender's.
  // One deletion per pod (a deleteCollection of 2,000 pods can outlast the API server's request timeout on a busy
  // machine); gone at once, as no kubelet has to stop anything.
  const bound = (await core.listNamespacedPod({ namespace: 'baseline' })).items.map((p) => p.metadata!.name!);
  await parallel(bound, 32, (name) =>
    core.deleteNamespacedPod({ name, namespace: 'baseline', gracePeriodSeconds: 0 }).catch(() => {}),
  );
  while ((await core.listNamespacedPod({ namespace: 'baseline', limit: 1 })).items.length > 0)
    await new Promise((r) => setTimeout(r, 250));
  await quiescent();

  console.log(`with the extender: ${PODS} pods, kube-scheduler + Tessera extender (filter, prioritize, bind)`);
  // The extender runs as its own process, as it does in a cluster.
  const { port, child: extender } = await startExtenderProcess(cluster, {
    output: 'inherit',
    nodeArgs: PROFILE_DIR ? ['--perf-basic-prof', '--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [],
  });
  await createPods(core, 'tessera', 'tessera-scheduler');
  const tessera = await accounted('extender', cluster.dir, { 'tessera extender': extender.pid ?? 0 }, async () => {
    await cluster.startScheduler(
      schedulerConfig(
        port,
        process.env.BENCH_PERCENTAGE ? { percentageOfNodesToScore: Number(process.env.BENCH_PERCENTAGE) } : {},
      ),
    );
    return timeUntilBound(core, 'tessera');
  });
  const withExtender = tessera.result;
  const figures = extenderFigures(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
  await cluster.stopScheduler();
  extender.kill('SIGTERM');
  await new Promise((r) => extender.once('exit', r));

  const rateAlone = PODS / alone;
  const rateWith = PODS / withExtender;
  console.log(
    `kube-scheduler alone:          ${rateAlone.toFixed(0)} pods/s (${alone.toFixed(1)} s for ${PODS} pods on ${NODES} nodes)`,
  );
  console.log(`kube-scheduler + extender:     ${rateWith.toFixed(0)} pods/s (${withExtender.toFixed(1)} s)`);
  console.log(`CPU, kube-scheduler alone:      ${baseline.line}`);
  console.log(`CPU, with the extender:        ${tessera.line}`);
  console.log(
    `CPU per pod (control plane${Number.isNaN(tessera.ours) ? '' : ' + extender'}): alone ${((1000 * baseline.ours) / PODS).toFixed(1)} ms, with the extender ${((1000 * tessera.ours) / PODS).toFixed(1)} ms`,
  );
  console.log(`CPU per pod by process, alone:          ${baseline.perPod}`);
  console.log(`CPU per pod by process, with the extender: ${tessera.perPod}`);
  console.log(`API server requests, alone:          ${baseline.requests}`);
  console.log(`API server requests, with the extender: ${tessera.requests}`);
  console.log(`extender, in process per call: ${figures}`);
  const ratio = rateWith / rateAlone;
  console.log(
    `ratio (${FRACTION ? 'fraction' : 'whole'} mode) ${ratio.toFixed(2)}, goal >= ${GOAL}: ${ratio >= GOAL ? 'PASS' : 'MISS'}`,
  );
  process.exitCode = ratio >= GOAL ? 0 : 1;
} finally {
  await cluster.stop();
}
for (const { phase, profile, pids } of profiles)
  console.log(
    `\nCPU profile, ${phase} phase (${FRACTION ? 'fraction' : 'whole'} mode):\n${await profile.report(pids)}`,
  );
