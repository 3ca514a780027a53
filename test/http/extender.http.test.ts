import t from 'tap';
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { pino } from 'pino';
import type { KubeNode, KubePod } from '../../core/kube-objects.ts';
import { compilePolicy } from '../../core/policy/compile.ts';
import { SchedulingState } from '../../core/scheduling/state.ts';
import { typicalShapes } from '../../core/scoring/workload-profile.ts';
import { fragmentationAware } from '../../core/scoring/fragmentation-aware.ts';
import { createExtenderApp } from '../../extender/app.ts';
import { ApiError, ConflictError, type ClusterWriter } from '../../extender/cluster-writer.ts';
import { ExtenderMetrics } from '../../extender/metrics.ts';
import { ExtenderScheduler } from '../../extender/scheduler.ts';
import {
  exclusiveH100,
  fractionH100,
  migA100,
  timeSlicedL4,
  node as plainNode,
  TWO_ISLANDS,
} from '../fixtures/nodes.ts';
import { pod } from '../fixtures/pods.ts';
import { EXAMPLE_POLICY_TEXT } from '../fixtures/admission.ts';

const log = pino({ level: 'silent' });

/** The API server's side of bind, as kube-apiserver's pods/binding does it (checked on v1.37.2). */
class FakeWriter implements ClusterWriter {
  readonly pods = new Map<string, KubePod>();
  readonly calls: string[] = [];
  /** Every version of every pod the API server stored, in order: one entry per update. */
  readonly updates: KubePod[] = [];
  failBind = false;
  /** Holds the Binding of one pod until `open` resolves (an API write in flight). */
  gate: { pod: string; open: Promise<void> } | null = null;
  async readPod(ns: string, name: string) {
    return structuredClone(this.pods.get(`${ns}/${name}`) ?? null);
  }
  async bindPod(ns: string, name: string, uid: string, node: string, annotations: Readonly<Record<string, string>>) {
    this.calls.push(`bind ${name} ${node}${Object.keys(annotations).length > 0 ? ' with annotations' : ''}`);
    if (this.gate?.pod === name) await this.gate.open;
    if (this.failBind) throw new ApiError(503, 'apiserver unavailable');
    const p = this.pods.get(`${ns}/${name}`);
    if (!p) throw new ApiError(404, `pods "${name}" not found`);
    // The UID precondition, then an unassigned pod; then nodeName and the annotations in one update.
    if (p.metadata!.uid !== uid)
      throw new ConflictError(
        `Operation cannot be fulfilled on pods "${name}": StorageError: invalid object, Code: 4, Key: /registry/pods/${ns}/${name}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: ${uid}, UID in object meta: ${p.metadata!.uid}`,
      );
    if (p.spec!.nodeName)
      throw new ConflictError(
        `Operation cannot be fulfilled on pods/binding "${name}": pod ${name} is already assigned to node "${p.spec!.nodeName}"`,
      );
    const next = structuredClone(p);
    next.spec!.nodeName = node;
    next.metadata!.annotations = { ...next.metadata!.annotations, ...annotations };
    next.metadata!.resourceVersion = String(Number(p.metadata!.resourceVersion ?? '0') + 1);
    next.status = { phase: 'Running' };
    this.pods.set(`${ns}/${name}`, next);
    this.updates.push(structuredClone(next));
  }
  /** What the extender's informer still shows where it lags behind the API server. */
  readonly informerLag = new Map<string, KubePod>();
  /** The pod deleted and created again under the same name (a new UID) before the informer saw it. */
  recreate(ns: string, name: string): void {
    const p = this.pods.get(`${ns}/${name}`)!;
    this.informerLag.set(`${ns}/${name}`, p);
    this.pods.set(`${ns}/${name}`, { ...p, metadata: { ...p.metadata, uid: `${p.metadata!.uid}-2` } });
  }
  async setNodeResources() {}
  async labelPod() {}
}

interface Env {
  state: SchedulingState;
  writer: FakeWriter;
  metrics: ExtenderMetrics;
  scheduler: ExtenderScheduler;
  url: string;
  nodes: Map<string, KubeNode>;
  add(p: KubePod): KubePod;
}

async function start(
  t: { teardown(fn: () => unknown): void },
  nodes: KubeNode[],
  filterAnswers: 'best' | 'all' = 'all',
): Promise<Env> {
  const compiled = compilePolicy([{ name: 'policy.yaml', text: EXAMPLE_POLICY_TEXT }]);
  if (!compiled.ok) throw new Error('policy');
  const state = new SchedulingState();
  state.setPolicy(compiled.policy);
  state.upsertNamespace({ metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } });
  state.upsertNamespace({ metadata: { name: 'risk', labels: { 'tessera.io/tenant': 'payments-ml' } } });
  for (const n of nodes) state.upsertNode(n);
  const writer = new FakeWriter();
  const metrics = new ExtenderMetrics();
  const scheduler = new ExtenderScheduler({
    state,
    strategy: fragmentationAware,
    // Every feasible node and every other node's reason by default: what most tests here check.
    filterAnswers,
    writer,
    metrics,
    log,
    podLookup: (ns, name) => writer.informerLag.get(`${ns}/${name}`) ?? writer.pods.get(`${ns}/${name}`),
  });
  scheduler.setProfile(typicalShapes([{ cpuMilli: 1000, memoryMiB: 1024, gpus: 1, milliPerGpu: 500, models: null }]));
  const app = createExtenderApp({ scheduler, metrics, log, notReady: () => null, prefix: '/scheduler' });
  const server: Server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/scheduler`;
  return {
    state,
    writer,
    metrics,
    scheduler,
    url,
    nodes: new Map(nodes.map((n) => [n.metadata!.name!, n])),
    add(p: KubePod) {
      p.metadata!.resourceVersion = '1';
      writer.pods.set(`${p.metadata!.namespace}/${p.metadata!.name}`, p);
      return p;
    },
  };
}

async function call(url: string, verb: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}/${verb}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const gpuPod = (name: string, milli: number, ns = 'vision') =>
  pod(name).ns(ns).gpuMilli(milli).annotate('tessera.io/pool', 'shared-h100').build();
function withMemory(p: KubePod, memory: string): KubePod {
  p.metadata!.annotations!['tessera.io/gpu-memory'] = memory;
  return p;
}
const shared = (name: string) => fractionH100(name, 2, { labels: { 'tessera.io/pool': 'shared-h100' } });

t.test('filter and prioritize over NodeNames (nodeCacheCapable) for every node mode', async (t) => {
  const env = await start(t, [
    shared('h1'),
    shared('h2'),
    migA100('m1'),
    timeSlicedL4('l1'),
    exclusiveH100('e1', 2),
    plainNode({ name: 'cpu' }),
  ]);
  const p = gpuPod('a', 500);
  const r = await call(env.url, 'filter', {
    Pod: p,
    Nodes: null,
    NodeNames: ['h1', 'h2', 'm1', 'l1', 'e1', 'cpu', 'ghost'],
  });
  t.equal(r.status, 200);
  t.same(r.body.NodeNames, ['h1', 'h2']);
  t.equal(r.body.Nodes, null);
  t.equal(r.body.Error, '');
  t.match(r.body.FailedAndUnresolvableNodes, {
    m1: /^NodeNotInPool: node m1 is not in pool shared-h100/,
    cpu: /NodeNotInPool/,
    ghost: /^UnknownNode/,
  });
  const mig = await call(env.url, 'filter', {
    Pod: pod('m').ns('vision').limit('nvidia.com/mig-3g.40gb', '1').build(),
    NodeNames: ['m1', 'l1', 'e1'],
  });
  t.same(mig.body.NodeNames, ['m1']);
  t.match(mig.body.FailedAndUnresolvableNodes, { l1: /ModeMismatch/, e1: /ModeMismatch/ });
  const ts = await call(env.url, 'filter', {
    Pod: pod('t').ns('vision').limit('nvidia.com/gpu.shared', '1').build(),
    NodeNames: ['l1', 'e1'],
  });
  t.same(ts.body.NodeNames, ['l1']);
  const ex = await call(env.url, 'filter', {
    Pod: pod('x').ns('vision').limit('nvidia.com/gpu', '2').build(),
    NodeNames: ['e1'],
  });
  t.same(ex.body.NodeNames, ['e1']);
  const prio = await call(env.url, 'prioritize', { Pod: p, NodeNames: ['h1', 'h2'] });
  t.equal(prio.body.length, 2);
  for (const h of prio.body)
    t.ok(Number.isInteger(h.Score) && h.Score >= 0 && h.Score <= 10 && typeof h.Host === 'string');
});

t.test('filter answers the single best node when kube-scheduler could not rank the candidates itself', async (t) => {
  const env = await start(
    t,
    [
      shared('h1'),
      shared('h2'),
      shared('h3'),
      { ...shared('soft'), spec: { taints: [{ key: 'maintenance', effect: 'PreferNoSchedule' }] } },
    ],
    'best',
  );
  const names = ['h1', 'h2', 'h3'];
  // h2 already holds a half GPU: packing ranks it first for the next half.
  const first = env.add(gpuPod('first', 500));
  t.equal(
    (await call(env.url, 'bind', { PodName: 'first', PodNamespace: 'vision', PodUID: first.metadata!.uid, Node: 'h2' }))
      .body.Error,
    '',
  );
  const next = gpuPod('next', 500);
  const prio = await call(env.url, 'prioritize', { Pod: next, NodeNames: names });
  const top = prio.body.filter((h: { Score: number }) => h.Score === 10).map((h: { Host: string }) => h.Host);
  t.same(top, ['h2'], 'prioritize ranks the packed node first');
  const best = await call(env.url, 'filter', { Pod: next, NodeNames: ['ghost', ...names] });
  t.same(best.body.NodeNames, ['h2'], 'the node prioritize ranks first, alone');
  t.same(best.body.FailedNodes, {}, 'kube-scheduler reads no reasons when a node is kept');
  t.same(best.body.FailedAndUnresolvableNodes, {});

  // What kube-scheduler would score itself keeps every feasible node in the answer, for it to weigh.
  const preferences: [string, KubePod][] = [
    [
      'preferred node affinity',
      pod('na').ns('vision').gpuMilli(500).annotate('tessera.io/pool', 'shared-h100').build(),
    ],
    ['preferred pod anti-affinity', gpuPod('pa', 500)],
    ['topology spread, ScheduleAnyway', gpuPod('ts', 500)],
    ['a ReplicaSet owner (default spreading)', gpuPod('rs', 500)],
  ];
  preferences[0]![1].spec!.affinity = {
    nodeAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        { weight: 10, preference: { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] } },
      ],
    },
  };
  preferences[1]![1].spec!.affinity = {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        { weight: 10, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: {} } },
      ],
    },
  };
  Object.assign(preferences[2]![1].spec!, {
    topologySpreadConstraints: [
      { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway' },
    ],
  });
  preferences[3]![1].metadata!.ownerReferences = [{ kind: 'ReplicaSet', name: 'rs-1', uid: 'u', controller: true }];
  for (const [what, p] of preferences) {
    const r = await call(env.url, 'filter', { Pod: p, NodeNames: names });
    t.same(r.body.NodeNames, names, `${what}: every feasible node`);
  }
  const spreadHard = gpuPod('hard', 500);
  Object.assign(spreadHard.spec!, {
    topologySpreadConstraints: [
      { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule' },
    ],
  });
  t.same(
    (await call(env.url, 'filter', { Pod: spreadHard, NodeNames: names })).body.NodeNames,
    ['h2'],
    'a hard constraint is a filter kube-scheduler has already applied',
  );

  // A PreferNoSchedule taint among the candidates is scored by kube-scheduler unless the pod tolerates it.
  const withSoft = [...names, 'soft'];
  t.same((await call(env.url, 'filter', { Pod: next, NodeNames: withSoft })).body.NodeNames, withSoft);
  const tolerant = gpuPod('tolerant', 500);
  tolerant.spec!.tolerations = [{ key: 'maintenance', operator: 'Exists', effect: 'PreferNoSchedule' }];
  t.same((await call(env.url, 'filter', { Pod: tolerant, NodeNames: withSoft })).body.NodeNames, ['h2']);

  // Nothing fits: every node's reason, as before.
  const none = await call(env.url, 'filter', { Pod: gpuPod('big', 3000), NodeNames: names });
  t.same(none.body.NodeNames, []);
  t.same(Object.keys({ ...none.body.FailedNodes, ...none.body.FailedAndUnresolvableNodes }).sort(), names);
  // The calls came over kept-alive connections: far fewer connections than calls were counted.
  const connections = (await env.metrics.connections.get()).values[0]!.value;
  t.ok(connections >= 1 && connections < 10, `${connections} connections for 15 calls`);
});

t.test('full Nodes (nodeCacheCapable: false) are answered with Nodes.items', async (t) => {
  const env = await start(t, []);
  const h1 = { ...shared('h1'), metadata: { ...shared('h1').metadata, resourceVersion: '7' } };
  const r = await call(env.url, 'filter', {
    Pod: gpuPod('a', 250),
    Nodes: { metadata: {}, items: [h1, exclusiveH100('e1')] },
    NodeNames: null,
  });
  t.equal(r.body.NodeNames, null);
  t.same(
    r.body.Nodes.items.map((n: KubeNode) => n.metadata!.name),
    ['h1'],
  );
  t.match(r.body.FailedAndUnresolvableNodes, { e1: /NodeNotInPool/ });
});

t.test('bind commits under a per-node lock; a second pod sees the first', async (t) => {
  const env = await start(t, [fractionH100('h1', 1, { labels: { 'tessera.io/pool': 'shared-h100' } })]);
  const a = env.add(gpuPod('a', 600));
  const b = env.add(gpuPod('b', 600));
  const [ra, rb] = await Promise.all([
    call(env.url, 'bind', { PodName: 'a', PodNamespace: 'vision', PodUID: a.metadata!.uid, Node: 'h1' }),
    call(env.url, 'bind', { PodName: 'b', PodNamespace: 'vision', PodUID: b.metadata!.uid, Node: 'h1' }),
  ]);
  t.same(ra.body, { Error: '' });
  t.match(rb.body.Error, /^GpuCompute: pod needs 600m compute/, 'the concurrent bind re-checks and refuses');
  const bound = env.writer.pods.get('vision/a')!;
  t.same(JSON.parse(bound.metadata!.annotations!['tessera.io/assignment']!), {
    node: 'h1',
    gpus: [{ index: 0, milli: 600, memoryMiB: 48935 }],
  });
  t.equal(bound.metadata!.annotations!['tessera.io/visible-devices'], '0');
  t.equal(bound.spec!.nodeName, 'h1');
  t.same(env.writer.calls, ['bind a h1 with annotations'], 'one write: the Binding; b never reached the API');
  t.equal(env.writer.updates.length, 1, 'one update of the pod');
  t.equal(env.state.ledger.usage('h1').milliOn(0), 600);
});

async function outcomes(metrics: ExtenderMetrics): Promise<Record<string, number>> {
  const m = await metrics.binds.get();
  return Object.fromEntries(m.values.map((v) => [String(v.labels.outcome), v.value]));
}

const bindArgs = (p: KubePod, node: string) => ({
  PodName: p.metadata!.name,
  PodNamespace: p.metadata!.namespace,
  PodUID: p.metadata!.uid,
  Node: node,
});

t.test('the Binding carries the assignment: nodeName and both annotations in one update', async (t) => {
  const env = await start(t, [
    fractionH100('h1', 2, { labels: { 'tessera.io/pool': 'shared-h100' } }),
    exclusiveH100('e1', 2),
  ]);
  const a = env.add(gpuPod('a', 250));
  t.same((await call(env.url, 'bind', bindArgs(a, 'h1'))).body, { Error: '' });
  t.same(env.writer.calls, ['bind a h1 with annotations'], 'one API call per bind');
  t.equal(env.writer.updates.length, 1, 'one update of the pod');
  const [bound] = env.writer.updates;
  t.equal(bound!.spec!.nodeName, 'h1');
  t.match(bound!.metadata!.annotations, {
    'tessera.io/assignment': '{"node":"h1","gpus":[{"index":0,"milli":250,"memoryMiB":20389}]}',
    'tessera.io/visible-devices': '0',
    'tessera.io/pool': 'shared-h100',
  });
  const x = env.add(pod('x').ns('vision').limit('nvidia.com/gpu', '1').build());
  t.same((await call(env.url, 'bind', bindArgs(x, 'e1'))).body, { Error: '' });
  t.equal(env.writer.calls[1], 'bind x e1', 'device-plugin nodes: a plain Binding, the device plugin picks the GPU');
  t.equal(env.writer.pods.get('vision/x')!.metadata!.annotations?.['tessera.io/assignment'], undefined);
  t.same(await outcomes(env.metrics), { bound: 2 });
});

t.test('a failed Binding writes nothing and drops the reservation; conflicts are conflicts', async (t) => {
  const env = await start(t, [fractionH100('h1', 1, { labels: { 'tessera.io/pool': 'shared-h100' } })]);
  const a = env.add(gpuPod('a', 500));
  env.writer.failBind = true;
  const r = await call(env.url, 'bind', bindArgs(a, 'h1'));
  t.match(r.body.Error, /^bind failed: apiserver unavailable; reservation dropped/);
  t.same(env.writer.updates, [], 'the pod was never touched: no annotation to roll back');
  t.equal(env.state.ledger.usage('h1').milliOn(0), 0, 'nothing stays reserved');
  env.writer.failBind = false;

  // The pod was deleted and created again under its name; kube-scheduler and the informer still know the old one.
  env.writer.recreate('vision', 'a');
  const c = await call(env.url, 'bind', bindArgs(a, 'h1'));
  t.match(c.body.Error, /^bind conflict: .*Precondition failed: UID in precondition/, 'the API refuses the old UID');
  t.equal(env.state.ledger.usage('h1').milliOn(0), 0);
  // The informer catches up: the scheduler's UID is now the stale one, and bind says so without writing.
  env.writer.informerLag.clear();
  t.match((await call(env.url, 'bind', bindArgs(a, 'h1'))).body.Error, /not .*; it was recreated/);

  const b = env.add(gpuPod('b', 500));
  t.same((await call(env.url, 'bind', bindArgs(b, 'h1'))).body, { Error: '' });
  t.match(
    (await call(env.url, 'bind', bindArgs(b, 'h1'))).body.Error,
    /^bind conflict: .*already assigned to node "h1"/,
    'a second Binding of a bound pod is refused by the API',
  );
  t.equal(env.state.ledger.usage('h1').milliOn(0), 500, 'and the first placement still stands');
  t.equal(env.writer.updates.length, 1);
  t.same(await outcomes(env.metrics), { error: 1, conflict: 3, bound: 1 });
  t.equal((await env.metrics.rollbacks.get()).values[0]!.value, 3);
});

t.test('the write comes after the node lock: binds to one node do not wait for each other’s API calls', async (t) => {
  const env = await start(t, [fractionH100('h1', 1, { labels: { 'tessera.io/pool': 'shared-h100' } })]);
  const [a, b, c] = [env.add(gpuPod('a', 600)), env.add(gpuPod('b', 300)), env.add(gpuPod('c', 300))];
  let release!: () => void;
  env.writer.gate = { pod: 'a', open: new Promise<void>((r) => (release = r)) };
  const boundA = call(env.url, 'bind', bindArgs(a, 'h1'));
  while (!env.writer.calls.includes('bind a h1 with annotations')) await new Promise((r) => setTimeout(r, 5));
  t.same((await call(env.url, 'bind', bindArgs(b, 'h1'))).body, { Error: '' }, 'b binds while a’s write is in flight');
  t.match(
    (await call(env.url, 'bind', bindArgs(c, 'h1'))).body.Error,
    /^GpuCompute/,
    'and c sees both reservations: 600m + 300m + 300m do not fit one GPU',
  );
  release();
  t.same((await boundA).body, { Error: '' });
  t.equal(env.state.ledger.usage('h1').milliOn(0), 900);
});

t.test('quota is checked again at bind, where admission races are settled', async (t) => {
  const env = await start(t, [
    fractionH100('h1', 8, { labels: { 'tessera.io/pool': 'shared-h100' } }),
    fractionH100('h2', 8, { labels: { 'tessera.io/pool': 'shared-h100' } }),
  ]);
  // payments-ml has a quota of 4 GPU-equivalents.
  const big = env.add(gpuPod('big', 3000, 'risk'));
  t.same(
    (await call(env.url, 'bind', { PodName: 'big', PodNamespace: 'risk', PodUID: big.metadata!.uid, Node: 'h1' })).body,
    { Error: '' },
  );
  const more = env.add(gpuPod('more', 2000, 'risk'));
  t.match(
    (await call(env.url, 'bind', { PodName: 'more', PodNamespace: 'risk', PodUID: more.metadata!.uid, Node: 'h2' }))
      .body.Error,
    /^QuotaExceeded: tenant payments-ml holds 3 of its 4 GPU-equivalents; this pod needs 2/,
  );
});

t.test('a memory-only share takes its memory and the matching compute on the GPU it gets', async (t) => {
  const h200 = fractionH100('h200', 1, {
    labels: {
      'tessera.io/pool': 'shared-h100',
      'nvidia.com/gpu.product': 'NVIDIA-H200',
      'nvidia.com/gpu.memory': '143771',
    },
  });
  const env = await start(t, [shared('h1'), h200]);
  // As the webhook admits `tessera.io/gpu-memory: 70Gi` in shared-h100: the least share (on an H200) as the request.
  const memoryOnly = (name: string) => env.add(withMemory(gpuPod(name, 499), '70Gi'));
  const a = memoryOnly('a');
  const f = await call(env.url, 'filter', { Pod: a, NodeNames: ['h1', 'h200'] });
  t.same(f.body.NodeNames, ['h1', 'h200']);
  t.same((await call(env.url, 'bind', bindArgs(a, 'h1'))).body, { Error: '' });
  t.same(JSON.parse(env.writer.pods.get('vision/a')!.metadata!.annotations!['tessera.io/assignment']!), {
    node: 'h1',
    gpus: [{ index: 0, milli: 879, memoryMiB: 71680 }],
  });
  t.equal(env.state.ledger.get(a.metadata!.uid!)?.equivalents, 0.879, 'it weighs what it took');
  const b = memoryOnly('b');
  t.same((await call(env.url, 'bind', bindArgs(b, 'h200'))).body, { Error: '' });
  t.same(JSON.parse(env.writer.pods.get('vision/b')!.metadata!.annotations!['tessera.io/assignment']!).gpus, [
    { index: 0, milli: 499, memoryMiB: 71680 },
  ]);
  t.equal(env.state.ledger.get(b.metadata!.uid!)?.equivalents, 0.499);
  // The H100 node's second GPU holds one more; the H200 holds a second (141 GB); then memory binds everywhere.
  t.same((await call(env.url, 'bind', bindArgs(memoryOnly('c'), 'h1'))).body, { Error: '' });
  t.same((await call(env.url, 'bind', bindArgs(memoryOnly('d'), 'h200'))).body, { Error: '' });
  const refused = await call(env.url, 'filter', { Pod: memoryOnly('e'), NodeNames: ['h1', 'h200'] });
  t.match(refused.body.FailedNodes, { h1: /^GpuMemory/, h200: /^GpuMemory/ });
});

t.test('tenant isolation: an isolated tenant never shares a GPU', async (t) => {
  const env = await start(t, [fractionH100('h1', 1, { labels: { 'tessera.io/pool': 'shared-h100' } })]);
  const a = env.add(gpuPod('a', 250));
  await call(env.url, 'bind', { PodName: 'a', PodNamespace: 'vision', PodUID: a.metadata!.uid, Node: 'h1' });
  const r = await call(env.url, 'filter', { Pod: gpuPod('p', 250, 'risk'), NodeNames: ['h1'] });
  t.match(r.body.FailedNodes, { h1: /^TenantIsolation/ });
});

t.test('restart: a new state rebuilt from the pods’ assignments sees the same usage', async (t) => {
  const env = await start(t, [
    fractionH100('h1', 8, {
      labels: { 'tessera.io/pool': 'shared-h100' },
      annotations: { 'tessera.io/gpu-topology': TWO_ISLANDS },
    }),
  ]);
  for (const [name, milli] of [
    ['a', 250],
    ['b', 4000],
    ['c', 500],
  ] as const) {
    const p = env.add(gpuPod(name, milli));
    t.same(
      (await call(env.url, 'bind', { PodName: name, PodNamespace: 'vision', PodUID: p.metadata!.uid, Node: 'h1' }))
        .body,
      { Error: '' },
    );
  }
  const rebuilt = new SchedulingState();
  rebuilt.upsertNamespace({ metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } });
  rebuilt.upsertNode(env.nodes.get('h1')!);
  for (const p of env.writer.pods.values()) rebuilt.upsertPod(p);
  for (let i = 0; i < 8; i++)
    t.equal(rebuilt.ledger.usage('h1').milliOn(i), env.state.ledger.usage('h1').milliOn(i), `GPU ${i}`);
  t.equal(rebuilt.problems.size, 0);
  const b = JSON.parse(env.writer.pods.get('vision/b')!.metadata!.annotations!['tessera.io/assignment']!);
  t.same(
    b.gpus.map((g: { index: number }) => g.index),
    [4, 5, 6, 7],
    'the 4-GPU pod got a whole NVLink island',
  );
});

/** A running fraction pod on a known GPU, as the informer would show it after a Tessera bind. */
function running(
  env: Env,
  name: string,
  gpu: number,
  milli: number,
  o: { ns?: string; priority?: number; node?: string } = {},
): KubePod {
  const node = o.node ?? 'h1';
  const p = pod(name)
    .ns(o.ns ?? 'vision')
    .gpuMilli(milli)
    .annotate('tessera.io/pool', 'shared-h100')
    .annotate('tessera.io/assignment', JSON.stringify({ node, gpus: [{ index: gpu, milli, memoryMiB: 0 }] }))
    .boundTo(node)
    .build();
  p.spec!.priority = o.priority ?? 0;
  env.add(p);
  env.state.upsertPod(p);
  return p;
}

const urgent = (name: string, milli: number, priority = 1000, ns = 'vision') => {
  const p = gpuPod(name, milli, ns);
  p.spec!.priority = priority;
  return p;
};

const victimsOf = (body: any, node = 'h1'): string[] =>
  (body.NodeNameToMetaVictims[node]?.Pods ?? []).map((v: { UID: string }) => v.UID).sort();

t.test('preempt replaces node-level victims with the fewest that free room on one GPU', async (t) => {
  const env = await start(t, [shared('h1')]);
  // GPU 0: two 500m pods; GPU 1: four 250m pods. The node is full; a 500m pod needs one GPU with 500m free.
  for (const [name, gpu, milli] of [
    ['a', 0, 500],
    ['b', 0, 500],
    ['c', 1, 250],
    ['d', 1, 250],
    ['e', 1, 250],
    ['f', 1, 250],
  ] as const) {
    running(env, name, gpu, milli);
  }
  // kube-scheduler's dry run counts node-level milli only: two 250m pods on GPU 1 look as good as one 500m pod.
  const proposed = { h1: { Pods: [{ UID: 'uid-c' }, { UID: 'uid-e' }], NumPDBViolations: 0 } };
  const r = await call(env.url, 'preempt', { Pod: urgent('p', 500), NodeNameToMetaVictims: proposed });
  t.same(victimsOf(r.body), ['uid-a'], 'one victim instead of two');
  t.equal(r.body.NodeNameToMetaVictims.h1.NumPDBViolations, 0);

  // Pods at or above the preemptor's priority are never victims.
  env.state.upsertPod({
    ...env.writer.pods.get('vision/a')!,
    spec: { ...env.writer.pods.get('vision/a')!.spec, priority: 1000 },
  });
  const r2 = await call(env.url, 'preempt', { Pod: urgent('p', 500), NodeNameToMetaVictims: proposed });
  t.same(victimsOf(r2.body), ['uid-b']);

  // Nothing of lower priority can make room: the node is no candidate.
  const r3 = await call(env.url, 'preempt', { Pod: urgent('p', 500, 0), NodeNameToMetaVictims: proposed });
  t.same(r3.body, { NodeNameToMetaVictims: {} });
  // Two whole GPUs need every pod gone; all are below 2000.
  const r4 = await call(env.url, 'preempt', { Pod: urgent('q', 2000, 2000), NodeNameToMetaVictims: proposed });
  t.same(victimsOf(r4.body), ['uid-a', 'uid-b', 'uid-c', 'uid-d', 'uid-e', 'uid-f']);
});

t.test("preempt takes other tenants' pods only where the policy allows it", async (t) => {
  const env = await start(t, [shared('h1')]);
  running(env, 'mine', 0, 750);
  running(env, 'theirs', 1, 500, { ns: 'risk' });
  running(env, 'theirs2', 1, 500, { ns: 'risk' });
  const proposed = { h1: { Pods: [{ UID: 'uid-theirs' }], NumPDBViolations: 1 } };
  const r = await call(env.url, 'preempt', { Pod: urgent('p', 500), NodeNameToMetaVictims: proposed });
  t.same(victimsOf(r.body), ['uid-mine'], 'research may not preempt payments-ml: its own pod goes instead');
  t.equal(r.body.NodeNameToMetaVictims.h1.NumPDBViolations, 1, "kube-scheduler's PDB count is kept");
  // payments-ml keeps its GPUs to itself (shareGpuWith: same-tenant): freeing room for research on GPU 1 takes both.
  const policy = EXAMPLE_POLICY_TEXT.replace('shareGpuWith: any', 'shareGpuWith: any\n      mayPreempt: [payments-ml]');
  const compiled = compilePolicy([{ name: 'policy.yaml', text: policy }]);
  if (!compiled.ok) throw new Error(JSON.stringify(compiled.problems));
  env.state.setPolicy(compiled.policy);
  const mine = env.writer.pods.get('vision/mine')!;
  env.state.upsertPod({ ...mine, spec: { ...mine.spec, priority: 1000 } });
  const r2 = await call(env.url, 'preempt', { Pod: urgent('p', 500), NodeNameToMetaVictims: proposed });
  t.same(victimsOf(r2.body), ['uid-theirs', 'uid-theirs2'], 'with mayPreempt, and tenant isolation kept');
});

t.test(
  'preempt on MIG: one pod holding the profile; a nominated preemptor holds its room against lower priorities',
  async (t) => {
    const mig1 = migA100('m1', 1);
    mig1.metadata!.labels!['tessera.io/pool'] = 'a100-mig';
    const env = await start(t, [mig1]);
    const mig = (name: string, profile: string, priority = 0) => {
      const p = pod(name)
        .ns('vision')
        .limit(`nvidia.com/mig-${profile}`, '1')
        .annotate('tessera.io/pool', 'a100-mig')
        .boundTo('m1')
        .build();
      p.spec!.priority = priority;
      env.add(p);
      env.state.upsertPod(p);
      return p;
    };
    mig('s1', '1g.10gb');
    mig('s2', '1g.10gb');
    mig('m', '2g.20gb');
    mig('l', '3g.40gb');
    const want = pod('want')
      .ns('vision')
      .limit('nvidia.com/mig-3g.40gb', '1')
      .annotate('tessera.io/pool', 'a100-mig')
      .build();
    want.spec!.priority = 500;
    const proposed = { m1: { Pods: [{ UID: 'uid-s1' }, { UID: 'uid-l' }], NumPDBViolations: 0 } };
    const r = await call(env.url, 'preempt', { Pod: want, NodeNameToMetaVictims: proposed });
    t.same(victimsOf(r.body, 'm1'), ['uid-l'], 'only the 3g.40gb holder');

    // kube-scheduler nominates the preemptor; the victim is gone. A lower-priority 3g pod must not take the room.
    env.state.removePod('uid-l');
    env.writer.pods.delete('vision/l');
    env.state.upsertPod({ ...env.add(want), status: { phase: 'Pending', nominatedNodeName: 'm1' } });
    const other = pod('other')
      .ns('vision')
      .limit('nvidia.com/mig-3g.40gb', '1')
      .annotate('tessera.io/pool', 'a100-mig')
      .build();
    const lower = await call(env.url, 'filter', { Pod: other, NodeNames: ['m1'] });
    t.match(lower.body.FailedNodes, { m1: /MigProfileExhausted/ }, 'held for the nominated pod');
    const self = await call(env.url, 'filter', { Pod: want, NodeNames: ['m1'] });
    t.same(self.body.NodeNames, ['m1'], 'the nominated pod itself fits');
  },
);

t.test('malformed requests get a clear 400; lower-case keys are read like Go does', async (t) => {
  const env = await start(t, [shared('h1')]);
  t.match(await call(env.url, 'filter', '{"Pod":'), { status: 400, body: { Error: /not valid JSON/ } });
  t.match(await call(env.url, 'filter', { Pod: {} }), { status: 400, body: { Error: /neither NodeNames nor Nodes/ } });
  t.match(await call(env.url, 'bind', { PodName: 'x' }), { status: 400, body: { Error: /PodNamespace is missing/ } });
  t.match(await call(env.url, 'filter', [1]), { status: 400 });
  const lower = await call(env.url, 'filter', { pod: gpuPod('a', 100), nodenames: ['h1'] });
  t.same(lower.body.NodeNames, ['h1']);
  const bad = await call(env.url, 'filter', { Pod: pod('bad').ns('vision').gpuMilli(1500).build(), NodeNames: ['h1'] });
  t.match(bad.body.FailedAndUnresolvableNodes, { h1: /not a multiple of 1000/ });
});

t.test('a standby is Ready but answers no verb, and closes the connection so the Service re-routes it', async (t) => {
  const env = await start(t, []);
  const app = createExtenderApp({
    scheduler: env.scheduler,
    metrics: env.metrics,
    log,
    notReady: () => 'not the leader (another replica holds the lease)',
    probeNotReady: () => null,
    prefix: '/scheduler',
  });
  const server: Server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const readyz = await fetch(`${base}/readyz`);
  t.equal(readyz.status, 200, 'Ready: it could serve if it led');
  t.match(await readyz.json(), { ready: true, leader: false, reason: /standby/ });
  const filter = await fetch(`${base}/scheduler/filter`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ Pod: { metadata: { name: 'p', namespace: 'research-a' } }, NodeNames: ['n1'] }),
  });
  t.equal(filter.headers.get('connection'), 'close', 'kube-scheduler’s kept-alive connection is closed');
  t.match(await filter.json(), { Error: /^Tessera extender not serving: not the leader/ });
});
