import fc from 'fast-check';
import t from 'tap';
import { type ClusterCapacity, poolCapacity, readClusterCapacity } from '../../../../core/fleet/capacity.ts';
import { nominateWorkers, pledge, type WorkerView } from '../../../../core/fleet/dispatch.ts';
import { podSetAsks } from '../../../../core/fleet/job-ask.ts';
import { poolRegion, tenantReach } from '../../../../core/fleet/region.ts';
import { tenantNamed } from '../../../../core/policy/model.ts';
import { allocation } from '../../../fixtures/allocations.ts';
import { fleetPolicy, fractionSet, wholeSet, workerState } from './fleet-fixtures.ts';

const policy = fleetPolicy();
const asks = (tenant: string, sets = [fractionSet(0.5)]) => {
  const r = podSetAsks(sets, tenant, tenantNamed(policy, tenant)!, policy);
  if (typeof r === 'string') throw new Error(r);
  return r;
};

function worker(name: string, region: 'eu' | 'us', fill = 0): WorkerView {
  const state = workerState(region);
  for (let i = 0; i < fill; i++)
    state.ledger.add(allocation(`f${i}`).ns('bank').tenant('bank').on(`${region}-shared-0`).gpu(i, 1000).build());
  const capacity: ClusterCapacity = {
    cluster: name,
    region: region === 'eu' ? 'eu-central' : 'us-east',
    pools: poolCapacity(policy, state.nodes.values(), (n) => state.ledger.usage(n)),
  };
  return { name, capacity };
}

t.test('a pool region is the region label of its selector', async (t) => {
  t.equal(poolRegion(policy.pools[0]!), 'eu-central');
  t.same(tenantReach(policy, 'bank'), { regions: ['eu-central'], anywhere: false });
  t.same(tenantReach(policy, 'research'), { regions: ['eu-central', 'us-east'], anywhere: false });
});

t.test('capacity per pool and model, free after what pods hold', async (t) => {
  const w = worker('eu', 'eu', 1);
  const shared = w.capacity!.pools.find((p) => p.pool === 'eu-shared')!;
  t.same({ nodes: shared.nodes, total: shared.total, free: shared.free }, { nodes: 1, total: 2, free: 1 });
  t.equal(shared.model, 'H100-SXM5-80GB'.length > 0 ? shared.model : null);
  t.same(
    w.capacity!.pools.filter((p) => p.pool.startsWith('us-')).map((p) => p.nodes),
    [],
    'no US pool has nodes in the EU',
  );
});

t.test('the job goes where its pools have room, and everywhere eligible when nowhere has', async (t) => {
  const research = asks('research');
  const n1 = nominateWorkers(research, [worker('eu', 'eu', 2), worker('us', 'us')]);
  t.same(n1.nominated, ['us'], n1.message);
  const n2 = nominateWorkers(research, [worker('eu', 'eu'), worker('us', 'us', 2)]);
  t.same(n2.nominated, ['eu']);
  const n3 = nominateWorkers(research, [worker('eu', 'eu', 2), worker('us', 'us', 2)]);
  t.same(n3.nominated.toSorted(), ['eu', 'us']);
  t.match(n3.message, /no eligible worker has room now/);
});

t.test('an EU-pinned tenant is never sent to the US, however full the EU is', async (t) => {
  const n = nominateWorkers(asks('bank'), [worker('eu', 'eu', 2), worker('us', 'us')]);
  t.same(n.nominated, ['eu']);
  const none = nominateWorkers(asks('bank'), [worker('us', 'us')]);
  t.same(none.nominated, []);
  t.match(none.message, /us: none of the pools eu-shared that can take pod set main has GPUs in region us-east/);
});

t.test('property: whatever the fill, a bank job is only ever nominated to EU workers', async (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom<'eu' | 'us'>('eu', 'us'), fc.integer({ min: 0, max: 2 })), {
        minLength: 1,
        maxLength: 5,
      }),
      fc.boolean(),
      (spec, whole) => {
        const workers = spec.map(([region, fill], i) => worker(`w${i}-${region}`, region, fill));
        const n = nominateWorkers(asks('bank', [whole ? wholeSet(1) : fractionSet(0.5)]), workers);
        return n.nominated.every((w) => w.endsWith('-eu')) && n.nominated.length > 0 === spec.some(([r]) => r === 'eu');
      },
    ),
    { numRuns: 60 },
  );
  t.pass('held for 60 random fleets');
});

t.test('a worker without published capacity is not eligible, and says why', async (t) => {
  const n = nominateWorkers(asks('research'), [
    { name: 'us', capacity: null, problem: 'unreachable' },
    worker('eu', 'eu'),
  ]);
  t.same(n.nominated, ['eu']);
  const full = nominateWorkers(asks('research'), [
    { name: 'us', capacity: null, problem: 'unreachable' },
    worker('eu', 'eu', 2),
  ]);
  t.same(full.nominated, ['eu']);
  t.match(full.message, /no eligible worker has room now .*; not eligible: us: unreachable/);
  const none = nominateWorkers(asks('research'), [{ name: 'us', capacity: null, problem: 'unreachable' }]);
  t.match(none.message, /us: unreachable/);
});

t.test('a nomination is kept while it still holds the job; pledges spend free capacity within a pass', async (t) => {
  const research = asks('research', [fractionSet(1)]);
  const eu = worker('eu', 'eu');
  const us = worker('us', 'us', 1);
  t.same(nominateWorkers(research, [eu, us], ['us']).nominated, ['us'], 'us still has 1 free');
  const pledged = new Map();
  // eu has 4 free GPU-equivalents in the pools a whole-GPU share may use (eu-shared, eu-whole).
  for (let i = 0; i < 4; i++) pledge(pledged, 'eu', research, eu.capacity!);
  t.same(nominateWorkers(research, [eu, us], [], pledged).nominated, ['us'], 'eu is promised to four earlier jobs');
});

t.test('published capacity is read defensively', async (t) => {
  t.match(readClusterCapacity(undefined), { ok: false });
  t.match(readClusterCapacity('{'), { ok: false, problem: /not JSON/ });
  t.match(readClusterCapacity('{"cluster":"a","pools":[{"pool":"x"}]}'), { ok: false });
  const ok = readClusterCapacity(JSON.stringify(worker('eu', 'eu').capacity));
  t.equal(ok.ok, true);
});
