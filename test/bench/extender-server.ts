// The extender process the benchmark drives: the real express app and scheduler over a SchedulingState holding a
// synthetic fleet (no API server needed). Occupancy keeps changing: every 20 ms one node gets a new allocation.

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
import { buildFleet } from './extender-fleet.ts';

const size = Number(process.argv[2] ?? 1000);
const compiled = compilePolicy([
  { name: 'policy.yaml', text: readFileSync(new URL('../../../shared/examples/policy.yaml', import.meta.url), 'utf8') },
]);
if (!compiled.ok) throw new Error('policy');
const state = new SchedulingState();
state.setPolicy(compiled.policy);
state.upsertNamespace({ metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } });
state.upsertNamespace({ metadata: { name: 'risk', labels: { 'tessera.io/tenant': 'payments-ml' } } });
const fleet = buildFleet(size);
for (const n of fleet.nodes) state.upsertNode(n);
for (const p of fleet.running) state.upsertPod(p);
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
const server = createServer(app);
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
  });
});
process.on('message', (m) => {
  if (m === 'memory') process.send?.({ rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed, hits: 0 });
});
process.on('disconnect', () => process.exit(0));
