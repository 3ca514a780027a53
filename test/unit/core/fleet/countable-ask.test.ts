import fc from 'fast-check';
import t from 'tap';
import { mutatePod } from '../../../../core/admission/mutate.ts';
import { countableAsk, milliOf, type PodTemplate, withCountableAsk } from '../../../../core/fleet/countable-ask.ts';
import { podOfSet } from '../../../../core/fleet/job-ask.ts';
import { tenantNamed } from '../../../../core/policy/model.ts';
import { fleetPolicy } from './fleet-fixtures.ts';

const policy = fleetPolicy();
const research = tenantNamed(policy, 'research')!;
const bank = tenantNamed(policy, 'bank')!;

const template = (annotations: Record<string, string>, limits?: Record<string, string>): PodTemplate => ({
  metadata: { annotations },
  spec: {
    containers: [
      { name: 'train', image: 'registry.example/train:1', ...(limits ? { resources: { limits } } : {}) },
      { name: 'sidecar', image: 'registry.example/log:1' },
    ],
  },
});

/** What Tessera's webhook counts for a pod of the template, in gpu-milli (the plan it writes into the pod). */
function tesseraMilli(tpl: PodTemplate, tenant: string): number {
  const pod = podOfSet({ name: 'p', count: 1, template: tpl }, tenant, 0);
  const m = mutatePod(pod, tenant, policy);
  if (m.denial !== null) throw new Error(m.denial);
  const limits = m.pod.spec?.containers?.flatMap((c) => Object.entries(c.resources?.limits ?? {})) ?? [];
  return limits
    .filter(([k]) => k === 'tessera.io/gpu-milli' || k === 'nvidia.com/gpu')
    .reduce((s, [k, v]) => s + (k === 'nvidia.com/gpu' ? Number(v) * 1000 : Number(v)), 0);
}

t.test('a fraction asked with the annotation alone gets the same gpu-milli on its first container', async (t) => {
  const tpl = template({ 'tessera.io/gpu-fraction': '0.5' });
  const ask = countableAsk(tpl, 'research', research, policy);
  t.same(ask, { kind: 'add', container: 0, milli: 500, pool: 'eu-shared' });
  const out = withCountableAsk(tpl, ask);
  t.same(out.spec?.containers?.[0]?.resources, {
    limits: { 'tessera.io/gpu-milli': '500' },
    requests: { 'tessera.io/gpu-milli': '500' },
  });
  t.notOk(out.spec?.containers?.[1]?.resources, 'the other containers are left alone');
  t.notOk(tpl.spec?.containers?.[0]?.resources, 'the input template is not changed');
});

t.test('whole GPUs asked with tessera.io/gpu-count count 1000 each', async (t) => {
  const ask = countableAsk(template({ 'tessera.io/gpu-count': '2' }), 'bank', bank, policy);
  t.match(ask, { kind: 'add', milli: 2000 });
});

t.test('a template that already asks with resources is kept: Kueue counts those', async (t) => {
  for (const limits of [{ 'tessera.io/gpu-milli': '500' }, { 'nvidia.com/gpu': '1' }] as Record<string, string>[]) {
    const ask = countableAsk(template({ 'tessera.io/gpu-fraction': '0.5' }, limits), 'research', research, policy);
    t.equal(ask.kind, 'keep');
    t.match(ask.kind === 'keep' ? ask.reason : '', /already asks with resources/);
    t.equal(withCountableAsk(template({}), ask).spec?.containers?.[0]?.resources, undefined);
  }
});

t.test('a template without a GPU ask, or with a malformed one, is kept with the reason', async (t) => {
  t.match(countableAsk(template({}), 'research', research, policy), { kind: 'keep', reason: /no GPU/ });
  t.match(countableAsk(template({ 'tessera.io/gpu-fraction': 'half' }), 'research', research, policy), {
    kind: 'keep',
    reason: /gpu-fraction="half" is not a number/,
  });
  t.match(countableAsk(template({ 'tessera.io/mig-profile': '1g.10gb' }), 'research', research, policy), {
    kind: 'keep',
    reason: /no pool of tenant research/,
  });
});

t.test('milliOf rounds up to the thousandth Tessera counts (1/7 of a GPU is 143)', async (t) => {
  t.equal(milliOf(1 / 7), 143);
  t.equal(milliOf(0.5), 500);
  t.equal(milliOf(2), 2000);
});

t.test('property: Kueue counts what Tessera counts, for any fraction asked with the annotation', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 100, max: 1000 }), fc.constantFrom('research', 'bank'), (milli, tenant) => {
      const fraction = String(milli / 1000);
      const tpl = template({ 'tessera.io/gpu-fraction': fraction });
      const ask = countableAsk(tpl, tenant, tenant === 'bank' ? bank : research, policy);
      if (ask.kind !== 'add') return false;
      const counted = withCountableAsk(tpl, ask);
      const kueue = Number(counted.spec?.containers?.[0]?.resources?.requests?.['tessera.io/gpu-milli']);
      // Tessera's webhook, on the worker, weighs the pod made from the template as written by the manager.
      return kueue === milli && tesseraMilli(counted, tenant) === kueue && tesseraMilli(tpl, tenant) === kueue;
    }),
  );
  t.pass('gpu-milli in the template equals the gpu-milli Tessera writes into the pod');
});
