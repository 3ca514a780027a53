// npm run test:fleet: a fleet of three real control planes with real Kueue v0.17.0 processes (test/fleet/fleet.ts):
// GPU jobs submitted to the manager are dispatched by Tessera's dispatcher to the worker whose Tessera pools can take
// them, admitted there by Tessera's tessera.io/gpu-fit check, and run by Tessera's extender; fractions are counted in
// tessera.io/gpu-milli by both Kueues and by Tessera. Run it under the shared lock:
//   flock -s /tmp/tessera-heavy.lock npm run test:fleet

import { BatchV1Api, CoreV1Api } from '@kubernetes/client-node';
import t from 'tap';
import { type Fleet, startFleet, WORKER_CONTROLLERS } from './fleet.ts';
import { DISPATCH_ANNOTATION } from '../../dispatcher/dispatcher.ts';
import {
  deleteJob,
  equivalentsTable,
  fillerPod,
  formatTable,
  isTrue,
  reservedMilli,
  runningPods,
  submit as submitJob,
  type TableRow,
  waitingReason,
  whereRunning,
  workloadOf,
} from './jobs.ts';
import { until } from '../fixtures/waiting.ts';

const started = Date.now();
let fleet: Fleet;

t.before(async () => {
  fleet = await startFleet({ progress: (l) => t.comment(`[${Math.round((Date.now() - started) / 1000)} s] ${l}`) });
  t.comment(
    `manager in ${fleet.manager.dir}; ${fleet.workers.map((w) => `${w.spec.name} in ${w.stack.cluster.dir}`).join('; ')}`,
  );
});
t.teardown(async () => {
  await fleet?.stop();
});

const core = (worker: string) => fleet.worker(worker).admin.makeApiClient(CoreV1Api);

/** What a test left behind (its jobs, its pods outside the fleet), removed after it whether it passed or not, so that
 * one failure does not leave the next test a full cluster. */
const leftovers: (() => Promise<void>)[] = [];
t.afterEach(async () => {
  for (const clean of leftovers.splice(0).reverse()) await clean().catch(() => {});
  await until(
    'the manager holds no quota',
    async () =>
      (await reservedMilli(fleet.managerApi, 'research')) === 0 &&
      (await reservedMilli(fleet.managerApi, 'bank')) === 0,
    120_000,
    1_000,
  ).catch(() => {});
});

/** Submits a job to the manager; it is deleted after the test. */
async function submit(f: Fleet, name: string, tenant: string, ask: Parameters<typeof submitJob>[3]) {
  leftovers.push(() => gone(name, tenant));
  await submitJob(f, name, tenant, ask);
}

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

async function gone(job: string, tenant: string) {
  await deleteJob(fleet, job, tenant).catch(() => {});
  await until(
    `${tenant}/${job} gone from every worker`,
    async () => (await whereRunning(fleet, job, tenant)).length === 0,
  );
}

/**
 * Waits until the tenant's fleet jobs are counted once in every layer: `equivalents` in the manager's Kueue, in the
 * workers' Kueues summed (copies that lost a race released), and, when given, `tessera` in the workers' Tessera summed
 * (which also holds the tenant's pods outside the fleet). Returns the table.
 */
async function countedOnce(tenant: string, equivalents: number, tessera?: number): Promise<TableRow[]> {
  return until(
    `${tenant} counted ${equivalents} once per layer`,
    async () => {
      const rows = await equivalentsTable(fleet, ['research', 'bank']);
      const mine = rows.filter((r) => r.tenant === tenant);
      const workers = (k: 'kueue' | 'tessera') =>
        Math.round(mine.filter((r) => r.cluster !== 'manager').reduce((s, r) => s + (r[k] ?? 0), 0) * 1000) / 1000;
      const ok =
        mine.find((r) => r.cluster === 'manager')?.kueue === equivalents &&
        workers('kueue') === equivalents &&
        (tessera === undefined || workers('tessera') === tessera);
      return ok ? rows : null;
    },
    60_000,
    1_000,
  );
}

/** Free GPU-equivalents a worker published for a pool. */
async function published(worker: string, pool: string): Promise<number | null> {
  const v = fleet.dispatcher.workers().find((w) => w.name === worker);
  return v?.capacity?.pools.find((p) => p.pool === pool)?.free ?? null;
}

t.test(
  'a fraction asked with the annotation alone counts 0.5 in both Kueues and in Tessera, as one asked with the resource',
  async (t) => {
    await submit(fleet, 'half', 'research', { fraction: 0.5 });
    const job = await fleet.managerAdmin
      .makeApiClient(BatchV1Api)
      .readNamespacedJob({ name: 'half', namespace: 'research' });
    const container = job.spec?.template.spec?.containers[0];
    t.same(
      [
        container?.resources?.requests?.['tessera.io/gpu-milli'],
        container?.resources?.limits?.['tessera.io/gpu-milli'],
      ],
      ['500', '500'],
      "the manager's job webhook wrote the countable gpu-milli into the template",
    );
    const worker = await runsOn('half', 'research');
    t.ok(['eu-central', 'us-east'].includes(worker), `runs on ${worker} (its copy is not finished as OutOfSync)`);
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

    // The same share asked with the resource counts the same.
    await submit(fleet, 'half-r', 'research', { milli: 500 });
    const other = await runsOn('half-r', 'research');
    t.equal(await reservedMilli(fleet.managerApi, 'research'), 1000, 'manager Kueue: 500 + 500 gpu-milli');
    // Both workers may have reserved a copy; the one that lost the race releases it once MultiKueue deletes it.
    const onWorkers = (rows: TableRow[], k: 'kueue' | 'tessera') =>
      rows.filter((r) => r.cluster !== 'manager' && r.tenant === 'research').reduce((s, r) => s + (r[k] ?? 0), 0);
    const rows = await until(
      "the workers' Kueues count 0.5 + 0.5",
      async () => {
        const r = await equivalentsTable(fleet, ['research', 'bank']);
        return onWorkers(r, 'kueue') === 1 ? r : null;
      },
      60_000,
      1_000,
    );
    t.pass(`workers' Kueues: 0.5 + 0.5 (${worker}, ${other})`);
    t.equal(onWorkers(rows, 'tessera'), 1, "workers' Tessera: 0.5 + 0.5");
    t.comment(`\n${formatTable(rows)}`);
    await gone('half', 'research');
    await gone('half-r', 'research');
    await until(
      'research released in the manager',
      async () => (await reservedMilli(fleet.managerApi, 'research')) === 0,
    );
  },
);

t.test('whole GPUs asked with nvidia.com/gpu count as 1000 gpu-milli each', async (t) => {
  await submit(fleet, 'two-whole', 'research', { gpus: 2 });
  const worker = await runsOn('two-whole', 'research');
  const pods = await runningPods(core(worker), 'two-whole', 'research');
  t.equal(pods.length, 1);
  t.equal(await reservedMilli(fleet.managerApi, 'research'), 2000, 'manager: 2 GPUs = 2000 gpu-milli');
  t.equal(await reservedMilli(fleet.worker(worker).api, 'research'), 2000, 'worker: 2000 gpu-milli');
  t.equal(fleet.worker(worker).stack.extender?.state.ledger.tenantEquivalents('research'), 2);
  await gone('two-whole', 'research');
});

t.test('dispatch follows free GPU-equivalents: a full worker gets no copy while another has room', async (t) => {
  // The US cluster's own users take all of us-shared.
  for (const i of [0, 1]) {
    leftovers.push(() => removePods('us-east', 'local', [`us-fill-${i}`]));
    await fillerPod(core('us-east'), `us-fill-${i}`, 'us-shared', { fraction: 1 });
  }
  await until('us-east publishes us-shared full', async () => (await published('us-east', 'us-shared')) === 0);
  await submit(fleet, 'to-eu', 'research', { fraction: 0.5 });
  const why = await until('to-eu dispatched', async () => {
    const w = await workloadOf(fleet.managerApi, 'to-eu', 'research');
    return w?.metadata.annotations?.[DISPATCH_ANNOTATION];
  });
  t.match(why, /^eu-central has [\d.]+ free GPU-equivalents in the tenant's pools; the job needs 0.5$/, why);
  t.equal(await runsOn('to-eu', 'research'), 'eu-central');
  t.notOk(await workloadOf(fleet.worker('us-east').api, 'to-eu', 'research'), 'us-east never got a copy');
  await gone('to-eu', 'research');
  for (const i of [0, 1]) await core('us-east').deleteNamespacedPod({ name: `us-fill-${i}`, namespace: 'local' });
  await until('us-east publishes us-shared free', async () => (await published('us-east', 'us-shared')) === 2);
});

/** Pods a worker's own users run outside the fleet, in a tenant's namespace (they count against its Tessera quota). */
async function localPod(
  worker: string,
  namespace: string,
  name: string,
  pool: string,
  resources: Record<string, string>,
) {
  leftovers.push(() => removePods(worker, namespace, [name]));
  await core(worker).createNamespacedPod({
    namespace,
    body: {
      metadata: { name, annotations: { 'tessera.io/pool': pool } },
      spec: { containers: [{ name: 'c', image: 'registry.example/serve:1', resources: { limits: resources } }] },
    },
  });
  await until(`${worker} ${namespace}/${name} bound`, async () => {
    const p = await core(worker).readNamespacedPod({ name, namespace });
    return p.spec?.nodeName && p.status?.phase === 'Running';
  });
}

async function removePods(worker: string, namespace: string, names: readonly string[]) {
  for (const name of names)
    await core(worker)
      .deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 })
      .catch(() => {});
  await until(`${worker}: ${names.join(', ')} gone`, async () => {
    const left = (await core(worker).listNamespacedPod({ namespace })).items.filter((p) =>
      names.includes(p.metadata?.name ?? ''),
    );
    return left.length === 0;
  });
}

t.test('an EU-only tenant stays in the EU: it waits for the full EU, then runs there', async (t) => {
  // eu-central's own users take both of bank's pools; us-east is empty.
  await localPod('eu-central', 'local', 'eu-a', 'eu-shared', { 'tessera.io/gpu-milli': '1000' });
  await localPod('eu-central', 'local', 'eu-b', 'eu-shared', { 'tessera.io/gpu-milli': '1000' });
  await localPod('eu-central', 'local', 'eu-c', 'eu-whole', { 'nvidia.com/gpu': '2' });
  await until('eu-central publishes full', async () => (await published('eu-central', 'eu-shared')) === 0);
  await submit(fleet, 'ledger', 'bank', { fraction: 0.5 });
  const wl = await until('ledger nominated', async () => {
    const w = await workloadOf(fleet.managerApi, 'ledger', 'bank');
    return w?.status?.nominatedClusterNames?.length ? w : null;
  });
  t.same(wl.status?.nominatedClusterNames, ['eu-central'], 'only eu-central, though us-east is empty');
  const euWaiting = await until('the EU copy held by gpu-fit', async () => {
    const w = await workloadOf(fleet.worker('eu-central').api, 'ledger', 'bank');
    const check = w?.status?.admissionChecks?.find((c) => c.name === 'gpu-fit');
    return check?.state === 'Pending' && check.message ? check.message : null;
  });
  t.match(euWaiting, /cannot be placed now/, `the EU worker says why: ${euWaiting}`);
  t.same(await whereRunning(fleet, 'ledger', 'bank'), [], 'not running anywhere');
  t.notOk(await workloadOf(fleet.worker('us-east').api, 'ledger', 'bank'), 'never copied to us-east');
  t.comment(`manager: ${await waitingReason(fleet, 'ledger', 'bank')}`);
  await removePods('eu-central', 'local', ['eu-a']);
  t.equal(await runsOn('ledger', 'bank'), 'eu-central', 'runs in the EU once a GPU frees');
  await removePods('eu-central', 'local', ['eu-b', 'eu-c']);
  await gone('ledger', 'bank');
});

t.test('gpu-fit makes a worker whose Tessera cannot take the job lose the race', async (t) => {
  // research holds its whole Tessera quota (3) in eu-central with pods outside the fleet, yet eu-shared has a free
  // GPU: the published capacity (not tenant-aware) makes both workers eligible and both get a copy.
  await localPod('eu-central', 'research', 'r-whole', 'eu-whole', { 'nvidia.com/gpu': '2' });
  await localPod('eu-central', 'research', 'r-shared', 'eu-shared', { 'tessera.io/gpu-milli': '1000' });
  await until(
    'eu-central publishes 1 free in eu-shared',
    async () => (await published('eu-central', 'eu-shared')) === 1,
  );
  await submit(fleet, 'race', 'research', { fraction: 0.5 });
  t.equal(await runsOn('race', 'research'), 'us-east');
  const eu = fleet
    .worker('eu-central')
    .stack.extender!.fleet.gpuFit!.recent()
    .filter((r) => r.workload.startsWith('research/job-race-'));
  t.ok(eu.length > 0, 'eu-central answered for its copy');
  t.ok(
    eu.every((r) => r.state === 'Pending'),
    'eu-central never answered Ready',
  );
  t.match(eu[0]?.message ?? '', /tenant research holds 3 of its 3 GPU-equivalents in this cluster/);
  const wl = await workloadOf(fleet.managerApi, 'race', 'research');
  t.equal(wl?.status?.clusterName, 'us-east');
  await until(
    'the losing copy is deleted',
    async () => !(await workloadOf(fleet.worker('eu-central').api, 'race', 'research')),
  );
  await removePods('eu-central', 'research', ['r-whole', 'r-shared']);
  await gone('race', 'research');
});

t.test('fault: a worker down while jobs wait; they run once when it is back', async (t) => {
  // eu-central is full for research's half-GPU asks; us-east goes down.
  await localPod('eu-central', 'local', 'eu-a', 'eu-shared', { 'tessera.io/gpu-milli': '1000' });
  await localPod('eu-central', 'local', 'eu-b', 'eu-shared', { 'tessera.io/gpu-milli': '1000' });
  await until('eu-central publishes eu-shared full', async () => (await published('eu-central', 'eu-shared')) === 0);
  const us = fleet.worker('us-east').stack.cluster;
  await us.stopApiserver();
  try {
    await submit(fleet, 'wait-1', 'research', { fraction: 0.5 });
    await submit(fleet, 'wait-2', 'research', { fraction: 0.5 });
    await until('us-east seen down by the dispatcher', async () =>
      fleet.dispatcher.workers().some((w) => w.name === 'us-east' && w.capacity === null),
    );
    await new Promise((r) => setTimeout(r, 5_000));
    for (const job of ['wait-1', 'wait-2']) {
      t.same(await whereRunning(fleet, job, 'research'), [], `${job} waits`);
      const reason = await waitingReason(fleet, job, 'research');
      t.match(reason, /no eligible worker has room now.*not eligible: us-east: /, `${job} says why: ${reason}`);
    }
  } finally {
    await us.startApiserver();
  }
  for (const job of ['wait-1', 'wait-2']) t.equal(await runsOn(job, 'research', 240_000), 'us-east', `${job} runs`);
  await new Promise((r) => setTimeout(r, 3_000));
  for (const job of ['wait-1', 'wait-2'])
    t.same(await whereRunning(fleet, job, 'research'), ['us-east'], `${job} runs on one worker only`);
  // The copies eu-central held while us-east was down are gone: nothing is counted twice.
  const rows = await countedOnce('research', 1, 1);
  t.pass("research counted 0.5 + 0.5 by the manager, by the workers' Kueues and by their Tessera");
  t.comment(`\n${formatTable(rows)}`);
  await removePods('eu-central', 'local', ['eu-a', 'eu-b']);
  await gone('wait-1', 'research');
  await gone('wait-2', 'research');
});

t.test("fault: the manager's Kueue restarts; every job runs once and is counted once", async (t) => {
  await submit(fleet, 'steady', 'research', { fraction: 0.5 });
  const before = await runsOn('steady', 'research');
  await submit(fleet, 'restart-1', 'research', { fraction: 0.5 });
  await submit(fleet, 'restart-2', 'bank', { fraction: 0.5 });
  await fleet.managerKueue.restart();
  t.equal(await runsOn('restart-1', 'research'), (await whereRunning(fleet, 'restart-1', 'research')).join(','));
  t.equal(await runsOn('restart-2', 'bank'), 'eu-central');
  await new Promise((r) => setTimeout(r, 3_000));
  t.same(await whereRunning(fleet, 'steady', 'research'), [before], 'the running job kept running, once');
  for (const [job, tenant] of [
    ['restart-1', 'research'],
    ['restart-2', 'bank'],
  ] as const)
    t.equal((await whereRunning(fleet, job, tenant)).length, 1, `${job} on one worker`);
  await until(
    'manager counts research 1.0 and bank 0.5',
    async () =>
      (await reservedMilli(fleet.managerApi, 'research')) === 1000 &&
      (await reservedMilli(fleet.managerApi, 'bank')) === 500,
  );
  // Copies that lost the race release their reservation once deleted; then every GPU is counted once.
  const rows = await until(
    'the workers count research 1.0 and bank 0.5, in Kueue and in Tessera',
    async () => {
      const r = await equivalentsTable(fleet, ['research', 'bank']);
      const w = r.filter((x) => x.cluster !== 'manager');
      const sum = (tenant: string, k: 'kueue' | 'tessera') =>
        w.filter((x) => x.tenant === tenant).reduce((s, x) => s + (x[k] ?? 0), 0);
      return sum('research', 'kueue') === 1 &&
        sum('research', 'tessera') === 1 &&
        sum('bank', 'kueue') === 0.5 &&
        sum('bank', 'tessera') === 0.5
        ? r
        : null;
    },
    60_000,
    1_000,
  );
  t.pass('each GPU-equivalent counted once per layer');
  t.comment(`\n${formatTable(rows)}`);
  for (const [job, tenant] of [
    ['steady', 'research'],
    ['restart-1', 'research'],
    ['restart-2', 'bank'],
  ] as const)
    await gone(job, tenant);
});

t.test(
  "fault: a worker's Tessera refuses the pods after dispatch; the job waits with the reason, then runs once",
  async (t) => {
    const eu = fleet.worker('eu-central');
    // No Job controller for a moment, so that the job is admitted on eu-central before its pods are made; meanwhile
    // the bank's own pods in eu-central, outside the fleet, take its whole Tessera quota there (3). Tessera's webhook
    // then refuses the job's pods when the Job controller makes them.
    await eu.stack.cluster.stopControllerManager();
    try {
      await submit(fleet, 'refused', 'bank', { fraction: 0.5 });
      await until('refused admitted on eu-central', async () =>
        isTrue(await workloadOf(eu.api, 'refused', 'bank'), 'Admitted'),
      );
      await localPod('eu-central', 'bank', 'b-whole', 'eu-whole', { 'nvidia.com/gpu': '2' });
      await localPod('eu-central', 'bank', 'b-shared', 'eu-shared', { 'tessera.io/gpu-milli': '1000' });
    } finally {
      await eu.stack.cluster.startControllerManager(WORKER_CONTROLLERS);
    }
    const refusal = await until(
      "the Job shows Tessera's refusal",
      async () => {
        const events = await core('eu-central').listNamespacedEvent({ namespace: 'bank' });
        return events.items.find((e) => e.reason === 'FailedCreate' && /quota/.test(e.message ?? ''))?.message;
      },
      120_000,
      1_000,
    );
    t.match(refusal, /tenant bank has a quota of 3 GPU-equivalents/, 'the worker says why');
    const pending = await until(
      "eu-central's gpu-fit holds the requeued job with the reason",
      async () => {
        const w = await workloadOf(eu.api, 'refused', 'bank');
        const check = w?.status?.admissionChecks?.find((c) => c.name === 'gpu-fit');
        return check?.state === 'Pending' && /holds 3 of its 3/.test(check.message ?? '') ? check.message : null;
      },
      240_000,
      1_000,
    );
    t.match(pending, /tenant bank holds 3 of its 3 GPU-equivalents in this cluster; the job needs 0.5/);
    t.same(await whereRunning(fleet, 'refused', 'bank'), [], 'no pod of it runs');
    t.equal(eu.stack.extender?.state.ledger.tenantEquivalents('bank'), 3, "Tessera holds only the bank's own 3");
    t.comment(`manager: ${await waitingReason(fleet, 'refused', 'bank')}`);
    await removePods('eu-central', 'bank', ['b-shared']);
    t.equal(await runsOn('refused', 'bank', 240_000), 'eu-central');
    await new Promise((r) => setTimeout(r, 3_000));
    t.same(await whereRunning(fleet, 'refused', 'bank'), ['eu-central'], 'runs once');
    t.equal(eu.stack.extender?.state.ledger.tenantEquivalents('bank'), 2.5, 'counted once by Tessera');
    await countedOnce('bank', 0.5, 2.5);
    t.pass("counted 0.5 by the manager's and the workers' Kueues, and with the bank's own 2, 2.5 by Tessera");
    await removePods('eu-central', 'bank', ['b-whole']);
    await gone('refused', 'bank');
  },
);
