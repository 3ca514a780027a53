// The extender process the benchmark drives: the real express app and scheduler over a SchedulingState holding a
// synthetic fleet (no API server needed). Occupancy keeps changing: every 20 ms one node gets a new allocation.
// The fleet's objects stay referenced, as an informer cache holds them. Asked for it, the process times how long the
// state takes to absorb watch events (pod added bound, pod updated, pod deleted, node updated), as the watch handlers
// of extender/server.ts apply them.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { compilePolicy } from '../../core/policy/compile.ts';
import { SchedulingState } from '../../core/scheduling/state.ts';
import { fragmentationAware } from '../../core/scoring/fragmentation-aware.ts';
import { typicalShapes } from '../../core/scoring/workload-profile.ts';
import { createExtenderApp } from '../../extender/app.ts';
import type { ClusterWriter } from '../../extender/cluster-writer.ts';
import { ExtenderMetrics } from '../../extender/metrics.ts';
import { ExtenderScheduler } from '../../extender/scheduler.ts';
import { allocation } from '../fixtures/allocations.ts';
import { pod } from '../fixtures/pods.ts';
import { buildFleet } from './extender-fleet.ts';

const size = Number(process.argv[2] ?? 1000);
const dense = process.argv[3] === 'dense';
const compiled = compilePolicy([
  { name: 'policy.yaml', text: readFileSync(new URL('../../../shared/examples/policy.yaml', import.meta.url), 'utf8') },
]);
if (!compiled.ok) throw new Error('policy');
const state = new SchedulingState();
state.setPolicy(compiled.policy);
state.upsertNamespace({ metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } });
state.upsertNamespace({ metadata: { name: 'risk', labels: { 'tessera.io/tenant': 'payments-ml' } } });
const fleet = buildFleet(size, 1, dense);
const loadStarted = performance.now();
const loadCpu = process.cpuUsage();
for (const n of fleet.nodes) state.upsertNode(n);
for (const p of fleet.running) state.upsertPod(p);
const loadMs = performance.now() - loadStarted;
const loadCpuUsed = process.cpuUsage(loadCpu);
const loadCpuMs = (loadCpuUsed.user + loadCpuUsed.system) / 1000;
const writer: ClusterWriter = {
  readPod: async () => null,
  bindPod: async () => {},
  setNodeResources: async () => {},
  labelPod: async () => {},
};
const metrics = new ExtenderMetrics();
const scheduler = new ExtenderScheduler({
  state,
  strategy: fragmentationAware,
  writer,
  metrics,
  log: pino({ level: 'warn' }),
  podLookup: () => undefined,
});
scheduler.setProfile(
  typicalShapes(
    [250, 500, 500, 1000, 1000, 1000, 2000].map((m) => ({
      cpuMilli: 4000,
      memoryMiB: 16384,
      gpus: m > 1000 ? m / 1000 : 1,
      milliPerGpu: Math.min(m, 1000),
      models: null,
    })),
  ),
);
const app = createExtenderApp({ scheduler, metrics, log: pino({ level: 'warn' }), notReady: () => null });
// CPU time per call, measured in the server: on a shared machine the client's wall-clock latency also counts the time
// the server waited for a core, this does not (calls arrive one at a time, so the process's CPU is the call's).
const cpuPerCall: Record<string, number[]> = { '/filter': [], '/prioritize': [] };
// And the wall-clock time from the request's arrival to its answer's last byte written, in the server: the client's
// latency minus this is the loopback and the client itself; this minus the CPU time is the wait for a core.
const wallPerCall: Record<string, number[]> = { '/filter': [], '/prioritize': [] };
const server = createServer((req, res) => {
  const started = process.cpuUsage();
  const arrived = performance.now();
  res.on('finish', () => {
    const used = process.cpuUsage(started);
    cpuPerCall[req.url ?? '']?.push((used.user + used.system) / 1000);
    wallPerCall[req.url ?? '']?.push(performance.now() - arrived);
  });
  app(req, res);
});
server.keepAliveTimeout = 65_000;
const fractionNodes = fleet.pools['shared-h100']!;
let churn = 0;
const timer = setInterval(() => {
  const node = fractionNodes[churn++ % fractionNodes.length]!;
  const uid = `churn-${churn}`;
  state.ledger.add(
    allocation(uid)
      .ns('vision')
      .tenant('research')
      .on(node)
      .cpuMemory(100, 100)
      .gpu(churn % 8, 1, 1)
      .build(),
  );
  if (churn > 50) state.ledger.remove(`churn-${churn - 50}`);
}, 20);
timer.unref();
server.listen(0, '127.0.0.1', () => {
  process.send?.({
    port: (server.address() as AddressInfo).port,
    pools: fleet.pools,
    rss: process.memoryUsage().rss,
    heap: process.memoryUsage().heapUsed,
    running: fleet.running.length,
    loadMs,
    loadCpuMs,
  });
});

const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

/** Times `n` watch events of each kind through the state, in microseconds (p50, p99, max). */
function absorb(n: number): Record<string, { p50: number; p99: number; max: number; cpuP99: number }> {
  const times: Record<string, number[]> = { podAdded: [], podUpdated: [], podDeleted: [], nodeUpdated: [] };
  const cpu: Record<string, number[]> = { podAdded: [], podUpdated: [], podDeleted: [], nodeUpdated: [] };
  const timed = (kind: string, f: () => void) => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    f();
    times[kind]!.push((performance.now() - t0) * 1000);
    const used = process.cpuUsage(c0);
    cpu[kind]!.push(used.user + used.system);
  };
  for (let i = 0; i < n; i++) {
    const node = fractionNodes[(i * 7919) % fractionNodes.length]!;
    const milli = 100;
    const built = pod(`w-${i}`)
      .ns('vision')
      .uid(`w-${i}`)
      .gpuMilli(milli)
      .cpu('1')
      .annotate('tessera.io/pool', 'shared-h100')
      .boundTo(node)
      .annotate('tessera.io/assignment', JSON.stringify({ node, gpus: [{ index: i % 8, milli, memoryMiB: 8155 }] }))
      .build();
    timed('podAdded', () => state.upsertPod(built));
    const updated = { ...built, metadata: { ...built.metadata, resourceVersion: String(i + 2), labels: { x: 'y' } } };
    timed('podUpdated', () => state.upsertPod(updated));
    timed('podDeleted', () => state.removePod(`w-${i}`));
    const n0 = fleet.nodes[(i * 104729) % fleet.nodes.length]!;
    const changed = { ...n0, metadata: { ...n0.metadata, resourceVersion: String(i + 2) } };
    timed('nodeUpdated', () => state.upsertNode(changed));
  }
  const out: Record<string, { p50: number; p99: number; max: number; cpuP99: number }> = {};
  for (const [kind, xs] of Object.entries(times)) {
    xs.sort((a, b) => a - b);
    const c = cpu[kind]!.sort((a, b) => a - b);
    out[kind] = {
      p50: percentile(xs, 0.5),
      p99: percentile(xs, 0.99),
      max: xs[xs.length - 1]!,
      cpuP99: percentile(c, 0.99),
    };
  }
  return out;
}

process.on('message', (m) => {
  if (m === 'memory') {
    const summary = (per: Record<string, number[]>) => {
      const out: Record<string, { p50: number; p99: number }> = {};
      for (const [path, xs] of Object.entries(per)) {
        const sorted = xs.slice(200).sort((a, b) => a - b);
        out[path] = { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
      }
      return out;
    };
    process.send?.({
      rss: process.memoryUsage().rss,
      heap: process.memoryUsage().heapUsed,
      hits: 0,
      cpu: summary(cpuPerCall),
      wall: summary(wallPerCall),
    });
  } else if (m === 'absorb') process.send?.({ absorb: absorb(2000) });
});
process.on('disconnect', () => process.exit(0));
