import t from 'tap';
import { decideGpuFit } from '../../../../core/fleet/gpu-fit.ts';
import { allocation } from '../../../fixtures/allocations.ts';
import { fractionSet, wholeSet, workerState } from './fleet-fixtures.ts';

t.test('a fraction job that fits is Ready, and says what it weighs', async (t) => {
  const v = decideGpuFit(workerState('eu'), { namespace: 'research', podSets: [fractionSet(0.5, 2)] });
  t.equal(v.state, 'Ready');
  t.match(v.message, /2 pod\(s\).*1 GPU-equivalents for tenant research/);
});

t.test('the tenant quota in this cluster, with what it holds, keeps a job Pending, not Rejected', async (t) => {
  const state = workerState('eu');
  state.ledger.add(
    allocation('held')
      .ns('research')
      .tenant('research')
      .on('eu-whole-0')
      .resource('nvidia.com/gpu', 2)
      .equivalents(2)
      .build(),
  );
  const v = decideGpuFit(state, { namespace: 'research', podSets: [wholeSet(1, 2)] });
  t.equal(v.state, 'Pending');
  t.match(v.message, /tenant research holds 2 of its 3 GPU-equivalents in this cluster; the job needs 2/);
});

t.test('no room now is Pending with the reason of the last node tried', async (t) => {
  const state = workerState('eu');
  for (const i of [0, 1])
    state.ledger.add(
      allocation(`full-${i}`).ns('bank').tenant('bank').on('eu-shared-0').gpu(i, 1000).equivalents(1).build(),
    );
  const v = decideGpuFit(state, { namespace: 'research', podSets: [fractionSet(0.5)] });
  t.equal(v.state, 'Pending');
  t.match(v.message, /cannot be placed now/);
});

t.test('workloads answered Ready ahead of this one hold their room until their pods are placed', async (t) => {
  const state = workerState('eu');
  const ahead = [{ namespace: 'research', podSets: [fractionSet(1, 2)] }];
  t.equal(decideGpuFit(state, { namespace: 'bank', podSets: [fractionSet(0.5)] }, []).state, 'Ready');
  const v = decideGpuFit(state, { namespace: 'bank', podSets: [fractionSet(0.5)] }, ahead);
  t.equal(v.state, 'Pending', 'both GPUs of eu-shared are promised to the job ahead');
  // Once its pods are placed (in the ledger), it no longer holds room twice.
  const placed = [{ namespace: 'research', podSets: [fractionSet(1, 2)], unplaced: new Map([['main', 0]]) }];
  t.equal(decideGpuFit(state, { namespace: 'bank', podSets: [fractionSet(0.5)] }, placed).state, 'Ready');
});

t.test("a policy violation is Rejected with the webhook's reason", async (t) => {
  const v = decideGpuFit(workerState('eu'), { namespace: 'research', podSets: [fractionSet(0.05)] });
  t.equal(v.state, 'Rejected');
  t.match(
    v.message,
    /Tessera would deny the job's pods: pod set main: [\s\S]*gpu-request-bounds[\s\S]*minimum is 0\.1/,
  );
});

t.test('a job larger than the whole quota is Rejected: no wait can fix it', async (t) => {
  const v = decideGpuFit(workerState('eu'), { namespace: 'research', podSets: [wholeSet(1, 4)] });
  t.equal(v.state, 'Rejected');
  t.match(v.message, /more than tenant research's whole quota of 3/);
});

t.test('a namespace not mirrored with its tenant label waits with the fix in the message', async (t) => {
  const v = decideGpuFit(workerState('eu'), { namespace: 'elsewhere', podSets: [fractionSet(0.5)] });
  t.equal(v.state, 'Pending');
  t.match(v.message, /no tessera.io\/tenant label in this cluster/);
});

t.test("the assigned flavor's node labels choose the pool among the tenant's", async (t) => {
  // research lists eu-shared first; Kueue assigned the us-shared flavor on the US worker.
  const state = workerState('us');
  const us = { 'tessera.io/pool': 'us-shared', 'topology.kubernetes.io/region': 'us-east' };
  const v = decideGpuFit(state, {
    namespace: 'research',
    podSets: [fractionSet(0.5)],
    nodeSelectors: new Map([['main', us]]),
  });
  t.equal(v.state, 'Ready');
  const without = decideGpuFit(state, { namespace: 'research', podSets: [fractionSet(0.5)] });
  t.equal(without.state, 'Pending', 'without it Tessera picks eu-shared, which has no nodes here');
});
