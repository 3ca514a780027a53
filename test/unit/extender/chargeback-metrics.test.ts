import t from 'tap';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { newAllocation } from '../../../core/allocation.ts';
import { parseDemand } from '../../../core/demand.ts';
import { SchedulingState } from '../../../core/scheduling/state.ts';
import { fragmentationAware } from '../../../core/scoring/fragmentation-aware.ts';
import type { ClusterWriter } from '../../../extender/cluster-writer.ts';
import { ExtenderMetrics } from '../../../extender/metrics.ts';
import { ExtenderScheduler } from '../../../extender/scheduler.ts';
import { examplePolicy, NAMESPACES } from '../../fixtures/admission.ts';
import { launcherPod } from '../../fixtures/kubevirt.ts';
import { fractionH100, migA100, node } from '../../fixtures/nodes.ts';
import { pod } from '../../fixtures/pods.ts';

t.test('per-pod GPU-equivalents for chargeback, quotas and pending pods by reason, at scrape time', async (t) => {
  const state = new SchedulingState();
  state.setPolicy(examplePolicy());
  for (const ns of NAMESPACES) state.upsertNamespace(ns);
  state.upsertNode(fractionH100('h', 2));
  state.upsertNode(migA100('a', 1));
  const metrics = new ExtenderMetrics();
  const scheduler = new ExtenderScheduler({
    state,
    strategy: fragmentationAware,
    writer: {} as ClusterWriter,
    metrics,
    log: pino({ level: 'silent' }),
    podLookup: () => undefined,
  });
  const whole = pod('ft')
    .ns('research-a')
    .gpuMilli(2000)
    .annotate('tessera.io/pool', 'shared-h100')
    .annotate(
      'tessera.io/assignment',
      JSON.stringify({
        node: 'h',
        gpus: [
          { index: 0, milli: 1000, memoryMiB: 0 },
          { index: 1, milli: 1000, memoryMiB: 0 },
        ],
      }),
    )
    .boundTo('h')
    .build();
  const mig = pod('m')
    .ns('pay')
    .limit('nvidia.com/mig-3g.40gb', '1')
    .annotate('tessera.io/pool', 'a100-mig')
    .boundTo('a')
    .build();
  const waiting = pod('w').ns('research-a').gpuMilli(500).build();
  waiting.status = {
    phase: 'Pending',
    conditions: [
      {
        type: 'PodScheduled',
        status: 'False',
        reason: 'Unschedulable',
        message: '0/2 nodes are available: 1 GpuCompute: no GPU has enough free compute',
      },
    ],
  };
  for (const p of [whole, mig, waiting]) state.upsertPod(p);
  // Reserved at bind, its Binding not seen yet: it holds its GPU for quota and fit, but is not billed until it is bound.
  const reserved = parseDemand(pod('r').ns('research-a').gpuMilli(500).build());
  if (!reserved.ok) throw new Error('fixture');
  state.assume(
    newAllocation({
      pod: reserved.demand,
      tenant: 'research',
      node: 'h',
      holding: { resources: {}, gpus: [{ index: 0, milli: 500, memoryMiB: 0 }], sharing: true },
      equivalents: 0.5,
      assumedUntil: Date.now() + 30_000,
      pool: 'shared-h100',
    }),
  );
  scheduler.observe();
  const text = await metrics.registry.metrics();
  t.notMatch(text, /pod="r"/, 'a reservation the API does not show yet is not billed');
  t.match(text, /tessera_tenant_gpu_equivalents\{tenant="research"\} 2.5\n/, 'but it counts toward the tenant');
  t.match(
    text,
    /tessera_pod_gpu_equivalents\{namespace="research-a",pod="ft",tenant="research",pool="shared-h100",node="h",gpu="0"\} 1\n/,
  );
  t.match(
    text,
    /tessera_pod_gpu_equivalents\{namespace="research-a",pod="ft",tenant="research",pool="shared-h100",node="h",gpu="1"\} 1\n/,
  );
  t.match(
    text,
    /tessera_pod_gpu_equivalents\{namespace="pay",pod="m",tenant="payments-ml",pool="a100-mig",node="a",gpu=""\} 0.428571/,
  );
  t.match(text, /tessera_tenant_quota_gpu_equivalents\{tenant="research"\} 12\n/);
  t.match(text, /tessera_pending_gpu_pods\{reason="GpuCompute"\} 1\n/);
  state.upsertPod({ ...whole, status: { phase: 'Succeeded' } });
  state.removePod('uid-w');
  scheduler.observe();
  const after = await metrics.registry.metrics();
  t.notMatch(after, /pod="ft"/, 'the series of a finished pod disappear');
  t.notMatch(after, /tessera_pending_gpu_pods\{/, 'no pending pods left');
});

t.test(
  'tessera_extender_leader is 1 only while the replica serves (leads with synced caches), read at scrape time',
  async (t) => {
    const { createExtenderApp } = await import('../../../extender/app.ts');
    const { createServer } = await import('node:http');
    const state = new SchedulingState();
    const metrics = new ExtenderMetrics();
    const log = pino({ level: 'silent' });
    const scheduler = new ExtenderScheduler({
      state,
      strategy: fragmentationAware,
      writer: {} as ClusterWriter,
      metrics,
      log,
      podLookup: () => undefined,
    });
    let why: string | null = 'not the leader (another replica holds the lease)';
    const server = createServer(createExtenderApp({ scheduler, metrics, log, notReady: () => why }));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    t.teardown(() => new Promise<void>((r) => server.close(() => r())));
    const { port } = server.address() as { port: number };
    const leader = async () =>
      /^tessera_extender_leader (\d)$/m.exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())?.[1];
    t.equal(await leader(), '0', 'a standby');
    why = 'caches not synced yet';
    t.equal(await leader(), '0', 'holding the Lease with its caches still filling');
    why = null;
    t.equal(await leader(), '1', 'leads and serves');
  },
);

t.test('a VM is billed once per scrape, by the launcher pod that holds the most (a live migration)', async (t) => {
  const state = new SchedulingState();
  state.setPolicy(
    examplePolicy(readFileSync(new URL('../../../../shared/examples/vm/policy.yaml', import.meta.url), 'utf8')),
  );
  for (const ns of NAMESPACES) state.upsertNamespace(ns);
  for (const n of ['pt-0', 'pt-1'])
    state.upsertNode(node({ name: n, allocatable: { 'nvidia.com/GH100_H100_SXM5_80GB': '8' } }));
  const metrics = new ExtenderMetrics();
  const scheduler = new ExtenderScheduler({
    state,
    strategy: fragmentationAware,
    writer: {} as ClusterWriter,
    metrics,
    log: pino({ level: 'silent' }),
    podLookup: () => undefined,
  });
  const on = (p: ReturnType<typeof launcherPod>, nodeName: string) => ({
    ...p,
    metadata: { ...p.metadata, annotations: { ...p.metadata?.annotations, 'tessera.io/pool': 'vm-h100' } },
    spec: { ...p.spec, nodeName },
    status: { phase: 'Running' },
  });
  const devices = { 'nvidia.com/GH100_H100_SXM5_80GB': 2 };
  state.upsertPod(on(launcherPod({ devices }), 'pt-0'));
  state.upsertPod(on(launcherPod({ devices, migrationJob: { uid: 'm1', name: 'mig' } }), 'pt-1'));
  scheduler.observe();
  const text = await metrics.registry.metrics();
  const series = text.split('\n').filter((l) => l.startsWith('tessera_pod_gpu_equivalents{'));
  t.equal(series.length, 1, series.join('\n'));
  t.match(series[0], /pool="vm-h100",node="pt-0",gpu=""\} 2$/);
  t.match(text, /tessera_tenant_gpu_equivalents\{tenant="research"\} 2\n/);
});
