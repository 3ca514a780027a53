// A memory-only ask (tessera.io/gpu-memory without a fraction) is a share whose memory binds (DESIGN: "a memory
// request alone reserves that memory and the matching share of compute"); docs/memory-asks.md states the choices.

import t from 'tap';
import fc from 'fast-check';
import { knownModels } from '../../../../core/catalog/gpu-models.ts';
import { readDemand } from '../../../../core/demand.ts';
import { fit } from '../../../../core/fit.ts';
import { readNode } from '../../../../core/inventory/node-inventory.ts';
import { Ledger } from '../../../../core/ledger.ts';
import { formatAssignment } from '../../../../core/assignment.ts';
import { equivalentsOfPod, podEquivalents } from '../../../../core/pools/equivalents.ts';
import { candidateModels, memoryShareRange } from '../../../../core/pools/memory-share.ts';
import { poolNamed } from '../../../../core/policy/model.ts';
import { admit, examplePolicy, EXAMPLE_POLICY_TEXT, view } from '../../../fixtures/admission.ts';
import { fractionH100 } from '../../../fixtures/nodes.ts';
import { pod } from '../../../fixtures/pods.ts';

const policy = examplePolicy();
const labelled = { team: 'vision', 'cost-center': '1234' };
const memoryPod = (name: string, memory: string) => {
  const b = pod(name).ns('research-a').annotate('tessera.io/gpu-memory', memory);
  for (const [k, v] of Object.entries(labelled)) b.label(k, v);
  return b;
};
const limitOf = (p: ReturnType<typeof admit>['pod']) =>
  p.spec?.containers?.[0]?.resources?.limits?.['tessera.io/gpu-milli'];

/** A fraction node with GPUs of the given catalogue model. */
function fractionNode(name: string, product: string, memoryMiB: number) {
  return readNode(
    fractionH100(name, 1, {
      labels: { 'nvidia.com/gpu.product': `NVIDIA-${product}`, 'nvidia.com/gpu.memory': String(memoryMiB) },
    }),
  );
}

t.test('70Gi alone in tenant research is admitted as a share, not denied as "0.001 of a GPU"', async (t) => {
  const a = admit(memoryPod('m', '70Gi').build(), policy);
  t.equal(a.denial, null, `admitted (${a.denial})`);
  // shared-h100 names no model: the request carries the least share (on an H200, 143771 MiB: 71680/143771 -> 499).
  t.equal(limitOf(a.pod), '499');
  t.equal(a.pod.metadata?.annotations?.['tessera.io/pool'], 'shared-h100');
  // Quota reserves the most it may take (an 80 GB H100, 81559 MiB: 879) until the assignment says what it took.
  t.equal(equivalentsOfPod(a.pod, policy), 0.879);
  const again = admit(a.pod, policy);
  t.same(
    again.patch.filter((op) => op.path.includes('resources')),
    [],
    'mutation is idempotent on its own output',
  );
});

t.test('a gpu-milli limit with the memory annotation is a compute floor under the memory share', async (t) => {
  const low = admit(memoryPod('l', '70Gi').gpuMilli(300).build(), policy);
  t.equal(low.denial, null, `300 milli + 70Gi admitted (${low.denial})`);
  t.equal(limitOf(low.pod), '499', 'memory binds: the share is above the 300 floor on every model');
  const high = admit(memoryPod('h', '70Gi').gpuMilli(600).build(), policy);
  t.equal(high.denial, null);
  t.equal(limitOf(high.pod), '600', 'the floor binds on roomy GPUs');
  const placed = fit(fractionNode('h200', 'H200', 143771), new Ledger().usage('h200'), readDemand(high.pod));
  t.ok(placed.ok);
  if (placed.ok) t.equal(placed.placements[0]!.gpus[0]!.milli, 600, 'an H200 gives it its 600 floor');
  const onH100 = fit(fractionNode('h100', 'H100-80GB-HBM3', 81559), new Ledger().usage('h100'), readDemand(high.pod));
  if (onH100.ok) t.equal(onH100.placements[0]!.gpus[0]!.milli, 879, 'an H100 gives it the memory share');
  else t.fail(onH100.reason.message);
});

t.test('minFraction judges the real share, on the roomiest model the pool may give', async (t) => {
  const small = admit(memoryPod('s', '2Gi').build(), policy);
  t.match(
    small.denial,
    /2048 MiB of GPU memory alone, which is 0\.015 of a H200 \(143771 MiB\).*minimum share is 0\.05\. Ask for at least 7189 MiB/,
  );
  t.notMatch(small.denial ?? '', /0\.001/);
  t.equal(admit(memoryPod('e', '7189Mi').build(), policy).denial, null, 'exactly the minimum on an H200 is admitted');
  // Naming the model narrows the candidates: 2Gi is 0.026 of an H100, still under 0.05; 4Gi is 0.051.
  const h100 = (m: string) => memoryPod('n', m).annotate('tessera.io/gpu-model', 'H100-80GB-HBM3').build();
  t.match(admit(h100('2Gi'), policy).denial, /0\.026 of a H100-80GB-HBM3/);
  const four = admit(h100('4Gi'), policy);
  t.equal(four.denial, null);
  t.equal(limitOf(four.pod), '51');
  t.equal(equivalentsOfPod(four.pod, policy), 0.051, 'one model: the reservation is exact');
  // maxMemory still applies as before.
  t.match(admit(memoryPod('x', '90Gi').build(), policy).denial, /maximum is 81920 MiB/);
});

t.test('the MIG and time-slicing pools keep their own memory rules', async (t) => {
  const mig = admit(memoryPod('g', '9Gi').annotate('tessera.io/pool', 'a100-mig').build(), policy);
  t.equal(mig.denial, null);
  t.same(mig.pod.spec?.containers?.[0]?.resources?.limits, { 'nvidia.com/mig-1g.10gb': '1' });
  const replica = admit(memoryPod('r', '4Gi').annotate('tessera.io/pool', 'l4-timesliced').build(), policy);
  t.equal(replica.denial, null);
  t.same(replica.pod.spec?.containers?.[0]?.resources?.limits, { 'nvidia.com/gpu.shared': '1' });
});

t.test('a placed memory-only share weighs what its assignment reserved', async (t) => {
  const admitted = admit(memoryPod('m', '70Gi').build(), policy).pod;
  const onH200 = structuredClone(admitted);
  onH200.spec!.nodeName = 'h200';
  onH200.metadata!.annotations!['tessera.io/assignment'] = formatAssignment({
    node: 'h200',
    gpus: [{ index: 0, milli: 499, memoryMiB: 71680 }],
  });
  t.equal(equivalentsOfPod(onH200, policy), 0.499);
  onH200.metadata!.annotations!['tessera.io/assignment'] = 'not json';
  t.equal(equivalentsOfPod(onH200, policy), 0.879, 'an unreadable assignment falls back to the reservation');
  // A plain fraction is unchanged by its assignment.
  const quarter = pod('q').ns('research-a').annotate('tessera.io/pool', 'shared-h100').gpuMilli(250).build();
  t.equal(podEquivalents(readDemand(quarter), policy, [{ index: 0, milli: 250, memoryMiB: 20389 }]), 0.25);
});

t.test('quota counts a pending memory-only pod at the most it may take', async (t) => {
  // research has 12; 11.2 held by fractions, so a 70Gi share (up to 0.879) does not fit, a 0.7 one does.
  const held = Array.from({ length: 14 }, (_, i) =>
    pod(`f${i}`).ns('research-b').annotate('tessera.io/pool', 'shared-h100').gpuMilli(800).build(),
  );
  const denied = admit(memoryPod('m', '70Gi').build(), policy, view(held));
  t.match(denied.denial, /11\.2 are held by 14 pod\(s\) and this pod needs 0\.879/);
  const fits = admit(
    memoryPod('k', '50Gi').annotate('tessera.io/gpu-model', 'H100-80GB-HBM3').build(),
    policy,
    view(held),
  );
  t.equal(fits.denial, null, 'a share known to be 0.628 fits');
});

t.test('a memory ask no candidate GPU holds is denied with what to do', async (t) => {
  const open = examplePolicy(EXAMPLE_POLICY_TEXT.replace('maxMemory: 80Gi', 'maxMemory: 200Gi'));
  const big = memoryPod('big', '150Gi').annotate('tessera.io/pool', 'shared-h100').build();
  t.match(admit(big, open).denial, /no GPU that pool shared-h100 may give this pod has 153600 MiB of memory/);
});

t.test('property: every placement of a memory-only share is within the range admission planned', async () => {
  const pool = poolNamed(policy, 'shared-h100')!;
  const models = knownModels();
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 143771 }),
      fc.integer({ min: 0, max: 1000 }),
      fc.constantFrom(...models),
      (memoryMiB, floor, model) => {
        const range = memoryShareRange(candidateModels(pool, null), memoryMiB, floor);
        if (model.memoryMiB < memoryMiB) return true;
        if (range === null) return false;
        // As admitted: the webhook writes the least share (never below the floor) as the gpu-milli request.
        const b = pod('p').ns('research-a').annotate('tessera.io/gpu-memory', `${memoryMiB}Mi`);
        const demand = readDemand(b.annotate('tessera.io/pool', 'shared-h100').gpuMilli(range.least.milli).build());
        const node = fractionNode('n', model.name, model.memoryMiB);
        const placed = fit(node, new Ledger().usage('n'), demand);
        if (!placed.ok) return false;
        const share = placed.placements[0]!.gpus[0]!;
        const reserved = podEquivalents(demand, policy);
        return (
          share.memoryMiB === memoryMiB &&
          share.milli >= range.least.milli &&
          share.milli <= range.most.milli &&
          // The quota reservation is never below what the pod really takes, so quota holds after placement.
          podEquivalents(demand, policy, placed.placements[0]!.gpus) <= reserved + 1e-9
        );
      },
    ),
    { numRuns: 300 },
  );
});
