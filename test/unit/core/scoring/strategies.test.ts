import t from 'tap';
import fc from 'fast-check';
import { readDemand } from '../../../../core/demand.ts';
import { fit } from '../../../../core/fit.ts';
import { readNode } from '../../../../core/inventory/node-inventory.ts';
import { Ledger } from '../../../../core/ledger.ts';
import { nodeFragmentation } from '../../../../core/scoring/fragmentation.ts';
import { normaliseScores } from '../../../../core/scoring/normalise.ts';
import { STRATEGIES, DEFAULT_STRATEGY } from '../../../../core/scoring/strategy-registry.ts';
import { scoringContext } from '../../../../core/scoring/strategy.ts';
import { typicalShapes } from '../../../../core/scoring/workload-profile.ts';
import { fractionH100, timeSlicedL4, TWO_ISLANDS } from '../../../fixtures/nodes.ts';
import { allocation } from '../../../fixtures/allocations.ts';
import { pod } from '../../../fixtures/pods.ts';

const shape = (gpus: number, milliPerGpu: number, cpuMilli = 1000) => ({
  cpuMilli,
  memoryMiB: 1024,
  gpus,
  milliPerGpu,
  models: null,
});

t.test('typical shapes cover 95% of pods, most frequent first, weights summing to 1', async (t) => {
  const pods = [
    ...Array(60).fill(shape(1, 500)),
    ...Array(35).fill(shape(1, 1000)),
    ...Array(4).fill(shape(8, 1000)),
    shape(1, 50),
  ];
  const profile = typicalShapes(pods);
  t.same(
    profile.shapes.map((s) => `${s.gpus}x${s.milliPerGpu}`),
    ['1x500', '1x1000'],
  );
  t.equal(Math.round(profile.shapes.reduce((s, x) => s + x.weight, 0) * 1e9) / 1e9, 1);
});

t.test('fragmentation: free GPU capacity that typical pods cannot use', async (t) => {
  const profile = typicalShapes([shape(1, 500), shape(1, 500)]);
  const allowed = [true];
  t.equal(nodeFragmentation(profile, allowed, [1000, 1000], 64000, 1 << 20), 0, 'empty GPUs are not fragmented');
  t.equal(nodeFragmentation(profile, allowed, [300, 1000], 64000, 1 << 20), 300, 'a 300m sliver is, for 500m pods');
  t.equal(
    nodeFragmentation(profile, allowed, [300, 1000], 500, 1 << 20),
    1300,
    'without CPU for the pod, all free GPU is',
  );
});

t.test('every strategy picks a feasible placement deterministically', async (t) => {
  const node = readNode(fractionH100('f', 8, { annotations: { 'tessera.io/gpu-topology': TWO_ISLANDS } }));
  const ledger = new Ledger();
  const context = scoringContext(typicalShapes([shape(1, 500), shape(1, 250), shape(2, 1000)]));
  ledger.add(allocation('x').on('f').gpu(2, 700, 100).build());
  for (const [name, strategy] of Object.entries(STRATEGIES)) {
    const demand = readDemand(pod('p').gpuMilli(250).build());
    const r = fit(node, ledger.usage('f'), demand);
    if (!r.ok) throw new Error('should fit');
    const a = strategy.choose({ node, usage: ledger.usage('f'), demand, placements: r.placements, context });
    const b = strategy.choose({ node, usage: ledger.usage('f'), demand, placements: r.placements, context });
    t.same(a, b, `${name} is deterministic`);
    t.ok(r.placements.includes(a.placement), `${name} returns one of fit's placements`);
    if (name === 'spread') t.not(a.placement.gpus[0]!.index, 2, 'spread avoids the busy GPU');
    if (name === 'binpack' || name === DEFAULT_STRATEGY)
      t.equal(a.placement.gpus[0]!.index, 2, `${name} fills the busy GPU`);
  }
});

t.test('device-plugin nodes are ranked by how full they become', async (t) => {
  const node = readNode(timeSlicedL4('l'));
  const ledger = new Ledger();
  const demand = readDemand(pod('p').limit('nvidia.com/gpu.shared', '1').build());
  const empty = fit(node, ledger.usage('l'), demand);
  if (!empty.ok) throw new Error('should fit');
  const context = scoringContext();
  const before = STRATEGIES[DEFAULT_STRATEGY]!.choose({
    node,
    usage: ledger.usage('l'),
    demand,
    placements: empty.placements,
    context,
  });
  ledger.add(allocation('y').on('l').resource('nvidia.com/gpu.shared', 8).sharing(true).build());
  const after = STRATEGIES[DEFAULT_STRATEGY]!.choose({
    node,
    usage: ledger.usage('l'),
    demand,
    placements: empty.placements,
    context,
  });
  t.ok(after.score > before.score, 'a fuller node ranks higher under the default');
});

t.test('normalising to the extender range 0..10', async (t) => {
  t.same(normaliseScores([]), []);
  t.same(normaliseScores([5]), [10]);
  t.same(normaliseScores([1, 2, 3]), [0, 5, 10]);
  t.same(normaliseScores([-4, -4]), [10, 10]);
  // A near-best node does not tie with the best: kube-scheduler would pick among ties at random.
  t.same(normaliseScores([0, 999, 1000, 1000]), [0, 9, 10, 10]);
  fc.assert(
    fc.property(fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true })), (scores) =>
      normaliseScores(scores).every((s) => Number.isInteger(s) && s >= 0 && s <= 10),
    ),
  );
  fc.assert(
    fc.property(fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1 }), (scores) => {
      const max = Math.max(...scores);
      const normalised = normaliseScores(scores);
      return scores.every((s, i) => (normalised[i] === 10) === (s === max));
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 2 }), (scores) => {
      const normalised = normaliseScores(scores);
      return scores.every((a, i) => scores.every((b, j) => !(a < b) || normalised[i]! <= normalised[j]!));
    }),
    { numRuns: 200 },
  );
});

t.test('model pressure: how much of a model model-restricted pods are expected to need', async (t) => {
  const { modelPressures } = await import('../../../../core/scoring/strategy.ts');
  const capacity = new Map([
    ['T4', 100],
    ['G2', 300],
  ]);
  const profile = typicalShapes([
    ...Array(50).fill({ cpuMilli: 1000, memoryMiB: 1, gpus: 1, milliPerGpu: 1000, models: ['T4'] }),
    ...Array(50).fill({ cpuMilli: 1000, memoryMiB: 1, gpus: 1, milliPerGpu: 1000, models: null }),
  ]);
  const p = modelPressures(profile, capacity);
  t.equal(p.get('T4'), 2, 'half the demand wants a quarter of the capacity: T4 is wanted twice over');
  t.equal(p.get('G2') ?? 0, 0, 'nobody needs G2 in particular');
  t.same(
    [
      ...modelPressures(
        typicalShapes([{ cpuMilli: 1, memoryMiB: 1, gpus: 1, milliPerGpu: 500, models: null }]),
        capacity,
      ),
    ],
    [],
    'no restricted pods, no pressure',
  );
});
