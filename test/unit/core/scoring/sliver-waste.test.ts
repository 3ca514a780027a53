import t from 'tap';
import fc from 'fast-check';
import { readDemand } from '../../../../core/demand.ts';
import { fit } from '../../../../core/fit.ts';
import { readNode } from '../../../../core/inventory/node-inventory.ts';
import { Ledger } from '../../../../core/ledger.ts';
import { absorbedShareLimit, sliverWaste } from '../../../../core/scoring/sliver-waste.ts';
import { DEFAULT_STRATEGY, STRATEGIES } from '../../../../core/scoring/strategy-registry.ts';
import { scoringContext } from '../../../../core/scoring/strategy.ts';
import { typicalShapes, type WorkloadProfile } from '../../../../core/scoring/workload-profile.ts';
import { allocation } from '../../../fixtures/allocations.ts';
import { fractionH100 } from '../../../fixtures/nodes.ts';
import { pod } from '../../../fixtures/pods.ts';

/** A profile with the given per-GPU shares and their frequencies (in pods). */
function profileOf(shares: Record<number, number>): WorkloadProfile {
  const pods = Object.entries(shares).flatMap(([milli, n]) =>
    Array.from({ length: n }, () => ({
      cpuMilli: 1000,
      memoryMiB: 1024,
      gpus: 1,
      milliPerGpu: Number(milli),
      models: null,
    })),
  );
  return typicalShapes(pods, 1);
}

// The openb default trace's main shares, in pods per thousand (shared/reference/gpu-trace-benchmark.md).
const OPENB = profileOf({ 160: 7, 220: 6, 230: 16, 320: 39, 470: 96, 650: 31, 810: 139, 1000: 491 });

t.test('the shares the unavoidable slivers absorb: Hall condition on the profile', async (t) => {
  t.equal(
    absorbedShareLimit(OPENB),
    190,
    '810 m shares leave more 190 m slivers than there are 160 m shares to fill them',
  );
  t.equal(
    absorbedShareLimit(profileOf({ 160: 50, 810: 10, 1000: 40 })),
    0,
    'more small shares than slivers to absorb them: nothing is absorbed',
  );
  t.equal(absorbedShareLimit(profileOf({ 500: 1, 1000: 1 })), 0, 'no share over 500 m, no unavoidable sliver');
  t.equal(absorbedShareLimit(profileOf({})), 0, 'empty profile');
});

t.test('sliver waste: the least a GPU can be left with by the shares that are not absorbed elsewhere', async (t) => {
  const waste = sliverWaste(OPENB);
  t.equal(waste[210], 210, '210 m free: only 160 m shares fit, and the 810 m slivers take them all');
  t.equal(waste[350], 30, '350 m free: a 320 m share leaves 30 m');
  t.equal(waste[530], 60, '530 m free: a 470 m share leaves 60 m');
  t.equal(waste[1000], 0, 'an untouched GPU can be filled');
  t.equal(waste[190], 190, 'a 190 m sliver is dead to the shares that still need a place');
  const none = sliverWaste(profileOf({}));
  t.ok(
    none.every((w, f) => w === f),
    'without a profile nothing tops a GPU up: the term is the pod size, the same on every GPU',
  );
});

t.test(
  'property: 0 <= waste[f] <= f, and a GPU smaller than every live share keeps all its free capacity',
  async (t) => {
    t.doesNotThrow(() =>
      fc.assert(
        fc.property(
          fc.dictionary(fc.integer({ min: 1, max: 1000 }).map(String), fc.integer({ min: 1, max: 100 }), {
            minKeys: 1,
            maxKeys: 12,
          }),
          (shares) => {
            const profile = profileOf(Object.fromEntries(Object.entries(shares).map(([k, v]) => [Number(k), v])));
            const waste = sliverWaste(profile);
            const limit = absorbedShareLimit(profile);
            const smallestLive = Math.min(
              ...Object.keys(shares)
                .map(Number)
                .filter((s) => s > limit),
            );
            return waste.every((w, f) => w >= 0 && w <= f && (f >= smallestLive || w === f));
          },
        ),
        { numRuns: 200 },
      ),
    );
  },
);

t.test('the default strategy pairs shares: a 470 m share joins a lone 470 m, not a lone 320 m', async (t) => {
  const node = readNode(fractionH100('f', 2));
  const ledger = new Ledger();
  ledger.add(allocation('a').on('f').gpu(0, 320).build());
  ledger.add(allocation('b').on('f').gpu(1, 470).build());
  const demand = readDemand(pod('p').gpuMilli(470).build());
  const r = fit(node, ledger.usage('f'), demand);
  if (!r.ok) throw new Error('should fit');
  const context = scoringContext(OPENB);
  const chosen = STRATEGIES[DEFAULT_STRATEGY]!.choose({
    node,
    usage: ledger.usage('f'),
    demand,
    placements: r.placements,
    context,
  });
  t.equal(chosen.placement.gpus[0]!.index, 1, '530 m free becomes 60 m (dead either way), not 680 m -> 210 m');
});

t.test('the default strategy sends a small share to an existing sliver nothing else fits', async (t) => {
  const strategy = STRATEGIES[DEFAULT_STRATEGY]!;
  const context = scoringContext(OPENB);
  const demand = readDemand(pod('p').gpuMilli(160).build());
  const scoreOn = (used: number) => {
    const node = readNode(fractionH100('n', 1));
    const ledger = new Ledger();
    ledger.add(allocation('x').on('n').gpu(0, used).build());
    const r = fit(node, ledger.usage('n'), demand);
    if (!r.ok) throw new Error('should fit');
    return strategy.choose({ node, usage: ledger.usage('n'), demand, placements: r.placements, context }).score;
  };
  t.ok(scoreOn(810) > scoreOn(650), 'the 190 m sliver beside an 810 m share beats the 350 m one a 320 m share fits');
  t.ok(scoreOn(810) > scoreOn(470), 'and the 530 m one a 470 m share fits');
});
