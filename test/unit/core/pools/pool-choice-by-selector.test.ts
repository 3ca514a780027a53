// A pod that names no pool goes to the first of its tenant's pools that can meet it and that its own nodeSelector
// does not rule out: a Kueue ResourceFlavor's node labels, added to a Job's pods at admission, choose the pool.

import t from 'tap';
import { decideGpu } from '../../../../core/pools/gpu-decision.ts';
import { parseDemand } from '../../../../core/demand.ts';
import { tenantNamed } from '../../../../core/policy/model.ts';
import { mutatePod } from '../../../../core/admission/mutate.ts';
import { pod } from '../../../fixtures/pods.ts';
import { fleetPolicy } from '../fleet/fleet-fixtures.ts';

const policy = fleetPolicy();
const research = tenantNamed(policy, 'research')!;
const half = () => pod('p').ns('research').annotate('tessera.io/gpu-fraction', '0.5');

function demandOf(p: ReturnType<typeof half>) {
  const r = parseDemand(p.build());
  if (!r.ok) throw new Error(r.error.message);
  return r.demand;
}

t.test('without a nodeSelector, the first pool that can meet the ask', async (t) => {
  const d = decideGpu(demandOf(half()), research, policy);
  t.equal(d.ok && d.pool.name, 'eu-shared');
});

t.test("the pod's nodeSelector skips pools it rules out", async (t) => {
  const d = decideGpu(demandOf(half()), research, policy, { 'tessera.io/pool': 'us-shared' });
  t.equal(d.ok && d.pool.name, 'us-shared');
  const region = decideGpu(demandOf(half()), research, policy, { 'topology.kubernetes.io/region': 'us-east' });
  t.equal(region.ok && region.pool.name, 'us-shared', 'a region label alone is enough');
});

t.test('a nodeSelector that rules out every pool is denied, saying so', async (t) => {
  const d = decideGpu(demandOf(half()), research, policy, { 'tessera.io/pool': 'nowhere' });
  t.equal(d.ok, false);
  t.match(!d.ok && d.message, /eu-shared: the pod's nodeSelector tessera.io\/pool=nowhere is outside the pool/);
});

t.test('a pool named by annotation is kept whatever the selector (the scheduler then finds no node)', async (t) => {
  const d = decideGpu(demandOf(half().annotate('tessera.io/pool', 'eu-shared')), research, policy, {
    'tessera.io/pool': 'us-shared',
  });
  t.equal(d.ok && d.pool.name, 'eu-shared');
});

t.test("the webhook mutates a Job pod carrying a flavor's node labels into that pool", async (t) => {
  const p = half().limit('tessera.io/gpu-milli', '500').build();
  p.spec!.nodeSelector = { 'tessera.io/pool': 'us-shared', 'topology.kubernetes.io/region': 'us-east' };
  const m = mutatePod(p, 'research', policy);
  t.equal(m.denial, null);
  t.equal(m.pod.metadata?.annotations?.['tessera.io/pool'], 'us-shared');
  t.same(m.pod.spec?.containers?.[0]?.resources?.limits, { 'tessera.io/gpu-milli': '500' }, 'the layout is kept');
});
