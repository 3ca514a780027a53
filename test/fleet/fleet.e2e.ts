// npm run test:fleet: a fleet of three real control planes with real Kueue v0.17.0 processes (test/fleet/fleet.ts):
// GPU jobs submitted to the manager are dispatched by Tessera's dispatcher to the worker whose Tessera pools can take
// them, admitted there by Tessera's tessera.io/gpu-fit check, and run by Tessera's extender; fractions are counted in
// tessera.io/gpu-milli by both Kueues and by Tessera. Run it alone, under the shared lock:
//   flock /tmp/tessera-heavy.lock npm run test:fleet

import { CoreV1Api } from '@kubernetes/client-node';
import t from 'tap';
import { type Fleet, startFleet } from './fleet.ts';
import {
  deleteJob,
  equivalentsTable,
  fillerPod,
  formatTable,
  reservedMilli,
  runningPods,
  submit,
  waitingReason,
  whereRunning,
  workloadOf,
} from './jobs.ts';
import { until } from '../fixtures/waiting.ts';

const started = Date.now();
let fleet: Fleet;

t.before(async () => {
  fleet = await startFleet({ progress: (l) => t.comment(`[${Math.round((Date.now() - started) / 1000)} s] ${l}`) });
});
t.teardown(async () => {
  await fleet?.stop();
});

const core = (worker: string) => fleet.worker(worker).admin.makeApiClient(CoreV1Api);

/** Waits until the job runs on exactly one worker, and returns it. */
async function runsOn(job: string, tenant: string, timeoutMs = 180_000): Promise<string> {
  const where = await until(
    `job ${tenant}/${job} running on a worker`,
    async () => {
      const w = await whereRunning(fleet, job, tenant);
      return w.length > 0 ? w : null;
    },
    timeoutMs,
    500,
  ).catch(async (e: unknown) => {
    throw new Error(`${String(e)}; manager says: ${await waitingReason(fleet, job, tenant)}`);
  });
  return where.join(',');
}

/** Free GPU-equivalents a worker published for a pool. */
async function published(worker: string, pool: string): Promise<number | null> {
  const v = fleet.dispatcher.workers().find((w) => w.name === worker);
  return v?.capacity?.pools.find((p) => p.pool === pool)?.free ?? null;
}

t.test('a fraction job from the manager runs on a worker, counted 0.5 in both Kueues and in Tessera', async (t) => {
  await submit(fleet, 'half', 'research', { fraction: 0.5 });
  const worker = await runsOn('half', 'research');
  t.ok(['eu-central', 'us-east'].includes(worker), `runs on ${worker}`);
  const w = fleet.worker(worker);
  const pods = await runningPods(core(worker), 'half', 'research');
  t.equal(pods.length, 1);
  const pod = pods[0]!;
  t.equal(pod.spec?.schedulerName, 'tessera-scheduler', 'Tessera scheduled it');
  t.ok(pod.metadata?.annotations?.['tessera.io/assignment'], 'Tessera assigned a GPU share');
  t.equal(pod.metadata?.annotations?.['tessera.io/pool'], worker === 'eu-central' ? 'eu-shared' : 'us-shared');
  t.equal(await reservedMilli(fleet.managerApi, 'research'), 500, 'manager Kueue reserves 500 gpu-milli');
  t.equal(await reservedMilli(w.api, 'research'), 500, 'worker Kueue reserves 500 gpu-milli');
  t.equal(w.stack.extender?.state.ledger.tenantEquivalents('research'), 0.5, 'Tessera holds 0.5 GPU for research');
  const wl = await workloadOf(fleet.managerApi, 'half', 'research');
  t.equal(wl?.status?.clusterName, worker, 'the manager records the worker');
  t.comment(`\n${formatTable(await equivalentsTable(fleet, ['research', 'bank']))}`);
  await deleteJob(fleet, 'half', 'research');
  await until('half gone from the worker', async () => (await whereRunning(fleet, 'half', 'research')).length === 0);
});

t.test('whole GPUs asked with nvidia.com/gpu count as 1000 gpu-milli each', async (t) => {
  await submit(fleet, 'two-whole', 'research', { gpus: 2 });
  const worker = await runsOn('two-whole', 'research');
  const pods = await runningPods(core(worker), 'two-whole', 'research');
  t.equal(pods.length, 1);
  t.equal(await reservedMilli(fleet.managerApi, 'research'), 2000, 'manager: 2 GPUs = 2000 gpu-milli');
  t.equal(await reservedMilli(fleet.worker(worker).api, 'research'), 2000, 'worker: 2000 gpu-milli');
  t.equal(fleet.worker(worker).stack.extender?.state.ledger.tenantEquivalents('research'), 2);
  await deleteJob(fleet, 'two-whole', 'research');
  await until('two-whole gone', async () => (await whereRunning(fleet, 'two-whole', 'research')).length === 0);
});

t.test('dispatch follows free GPU-equivalents: a full worker gets no copy while another has room', async (t) => {
  // The US cluster's own users take all of us-shared.
  for (const i of [0, 1]) await fillerPod(core('us-east'), `us-fill-${i}`, 'us-shared', { fraction: 1 });
  await until('us-east publishes us-shared full', async () => (await published('us-east', 'us-shared')) === 0);
  await submit(fleet, 'to-eu', 'research', { fraction: 0.5 });
  const wl = await until('to-eu nominated', async () => {
    const w = await workloadOf(fleet.managerApi, 'to-eu', 'research');
    return w?.status?.nominatedClusterNames?.length || w?.status?.clusterName ? w : null;
  });
  t.notOk(wl.status?.nominatedClusterNames?.includes('us-east'), 'us-east is not nominated');
  t.equal(await runsOn('to-eu', 'research'), 'eu-central');
  await deleteJob(fleet, 'to-eu', 'research');
  for (const i of [0, 1]) await core('us-east').deleteNamespacedPod({ name: `us-fill-${i}`, namespace: 'local' });
  await until('us-east publishes us-shared free', async () => (await published('us-east', 'us-shared')) === 2);
});
