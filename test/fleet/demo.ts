// npm run demo:fleet: a fleet of a manager and two workers (eu-central, us-east) on this machine, real Kueue v0.17.0
// with MultiKueue and Tessera in each worker (test/fleet/fleet.ts). Jobs submitted to the manager land on workers;
// the EU tenant's jobs stay in the EU; a full worker's jobs go elsewhere where policy allows, or wait and then run
// when capacity frees. Prints where each job runs and a per-cluster, per-tenant table of GPU-equivalents.
// On a shared machine run it under the lock: flock -s /tmp/tessera-heavy.lock npm run demo:fleet

import { CoreV1Api } from '@kubernetes/client-node';
import { until } from '../fixtures/waiting.ts';
import { startFleet } from './fleet.ts';
import { equivalentsTable, fillerPod, formatTable, submit, waitingReason, whereRunning } from './jobs.ts';

const t0 = Date.now();
const say = (line: string) => console.log(`[${String(Math.round((Date.now() - t0) / 1000)).padStart(4)} s] ${line}`);

async function runsOn(fleet: Awaited<ReturnType<typeof startFleet>>, job: string, tenant: string): Promise<string> {
  const where = await until(
    `${tenant}/${job} running`,
    async () => {
      const w = await whereRunning(fleet, job, tenant);
      return w.length > 0 ? w : null;
    },
    240_000,
    500,
  );
  return where.join(',');
}

async function main(): Promise<void> {
  say('starting the fleet: manager, eu-central and us-east (first run builds Kueue)');
  const fleet = await startFleet({ progress: say });
  try {
    const core = (w: string) => fleet.worker(w).admin.makeApiClient(CoreV1Api);
    say('research submits a half-GPU job asked with the annotation tessera.io/gpu-fraction: 0.5 alone');
    await submit(fleet, 'notebook', 'research', { fraction: 0.5 });
    say(`  notebook runs on ${await runsOn(fleet, 'notebook', 'research')}`);
    say("  counted 0.5 by both Kueues (the manager's job webhook wrote tessera.io/gpu-milli: 500 into its template):");
    console.log(`\n${formatTable(await equivalentsTable(fleet, ['bank', 'research']))}\n`);

    say("us-east's own users take all of us-shared; research submits another half-GPU job");
    for (const i of [0, 1]) await fillerPod(core('us-east'), `us-fill-${i}`, 'us-shared', { fraction: 1 });
    await until('us-east publishes us-shared full', async () =>
      fleet.dispatcher
        .workers()
        .some((w) => w.name === 'us-east' && w.capacity?.pools.find((p) => p.pool === 'us-shared')?.free === 0),
    );
    await submit(fleet, 'sweep', 'research', { fraction: 0.5 });
    say(`  sweep runs on ${await runsOn(fleet, 'sweep', 'research')} (us-shared is full)`);

    say('the bank (EU-only) submits a whole-GPU job pinned to its pool eu-whole');
    await submit(fleet, 'risk', 'bank', { gpus: 1, pool: 'eu-whole' });
    say(`  risk runs on ${await runsOn(fleet, 'risk', 'bank')}`);
    say("eu-central's own users take the other eu-whole GPU; the bank submits another such job");
    await fillerPod(core('eu-central'), 'eu-whole-fill-0', 'eu-whole', { gpus: 1 });
    await until('eu-central publishes eu-whole full', async () =>
      fleet.dispatcher
        .workers()
        .some((w) => w.name === 'eu-central' && w.capacity?.pools.find((p) => p.pool === 'eu-whole')?.free === 0),
    );
    await submit(fleet, 'risk-2', 'bank', { gpus: 1, pool: 'eu-whole' });
    await new Promise((r) => setTimeout(r, 8_000));
    say(`  risk-2 waits, never sent to us-east: ${await waitingReason(fleet, 'risk-2', 'bank')}`);
    say('eu-central frees a GPU');
    await core('eu-central')
      .deleteNamespacedPod({ name: 'eu-whole-fill-0', namespace: 'local' })
      .catch(() => {});
    say(`  risk-2 runs on ${await runsOn(fleet, 'risk-2', 'bank')}`);

    console.log(`\n${formatTable(await equivalentsTable(fleet, ['bank', 'research']))}\n`);
    say('done');
  } finally {
    await fleet.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
