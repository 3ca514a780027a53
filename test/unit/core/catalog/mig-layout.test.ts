import t from 'tap';
import fc from 'fast-check';
import { MIG_GEOMETRIES, migProfile } from '../../../../core/catalog/mig-geometry.ts';
import {
  choosePlacement,
  layoutProblems,
  reachableComputeSlices,
  reconstructLayout,
  type MigInstance,
} from '../../../../core/catalog/mig-layout.ts';
import { lookupModel, modelMatches } from '../../../../core/catalog/gpu-models.ts';

const g80 = MIG_GEOMETRIES['80GB']!;
const profile = (name: string) => migProfile(g80, name)!;

t.test('catalog: every model of the brief has MIG profiles, with +me variants', async (t) => {
  for (const model of ['A100-SXM4-40GB', 'A100-SXM4-80GB', 'H100-80GB-HBM3', 'H100-NVL', 'H200', 'A30']) {
    const m = lookupModel(`NVIDIA-${model}`);
    t.ok(m?.mig, `${model} has a MIG geometry`);
    t.ok(
      m!.mig!.profiles.some((p) => p.mediaExtensions),
      `${model} has a +me profile`,
    );
  }
  t.same(
    g80.profiles.map((p) => p.name),
    ['1g.10gb', '1g.10gb+me', '1g.20gb', '2g.20gb', '3g.40gb', '4g.40gb', '7g.80gb'],
  );
  t.same(
    MIG_GEOMETRIES['A30-24GB']!.profiles.map((p) => p.name),
    ['1g.6gb', '1g.6gb+me', '2g.12gb', '2g.12gb+me', '4g.24gb'],
  );
  t.equal(lookupModel('L4')?.mig, null, 'L4 has no MIG');
  t.ok(modelMatches('NVIDIA-A100-SXM4-80GB-MIG-1g.10gb-SHARED', 'A100-SXM4-80GB'), 'GFD decorations are ignored');
});

t.test('legality: starts, overlap, instance limits and the single media-engine set', async (t) => {
  t.same(
    layoutProblems(g80, [
      { profile: '4g.40gb', start: 0 },
      { profile: '3g.40gb', start: 4 },
    ]),
    [],
    '4g@0 + 3g@4 is the full GPU',
  );
  t.match(layoutProblems(g80, [{ profile: '3g.40gb', start: 2 }])[0], /cannot start at memory slice 2/);
  t.match(
    layoutProblems(g80, [
      { profile: '2g.20gb', start: 0 },
      { profile: '1g.10gb', start: 1 },
    ])[0],
    /overlaps/,
  );
  t.match(
    layoutProblems(g80, [
      { profile: '1g.10gb+me', start: 0 },
      { profile: '1g.10gb+me', start: 1 },
    ]).join(),
    /\+me/,
  );
  t.match(layoutProblems(g80, [{ profile: '5g.50gb', start: 0 }])[0], /does not exist/);
  const sevenOnes = Array.from({ length: 7 }, (_, i) => ({ profile: '1g.10gb', start: i }));
  t.same(layoutProblems(g80, sevenOnes), []);
  t.match(
    layoutProblems(g80, [...sevenOnes, { profile: '1g.10gb', start: 7 }]).join(),
    /cannot start at memory slice 7/,
  );
});

t.test('placement order matters: 3g goes to slice 4 so 2g + 1g + 1g still fit', async (t) => {
  t.equal(choosePlacement(g80, [], profile('3g.40gb')), 4);
  const layout: MigInstance[] = [{ profile: '3g.40gb', start: 4 }];
  for (const name of ['2g.20gb', '1g.10gb', '1g.10gb']) {
    const start = choosePlacement(g80, layout, profile(name));
    t.not(start, null, `${name} still fits`);
    layout.push({ profile: name, start: start! });
  }
  t.same(layoutProblems(g80, layout), []);
  t.equal(reachableComputeSlices(g80, 0), 7);
  t.equal(
    choosePlacement(g80, [{ profile: '7g.80gb', start: 0 }], profile('1g.10gb')),
    null,
    'a full GPU takes nothing more',
  );
});

t.test('reconstructs a legal layout from GFD counts, or says why it cannot', async (t) => {
  const balanced = reconstructLayout(g80, 8, { '1g.10gb': 16, '2g.20gb': 8, '3g.40gb': 8 });
  t.equal(balanced.problem, null);
  for (const gpu of balanced.gpus) t.same(layoutProblems(g80, gpu), []);
  t.equal(balanced.gpus.flat().length, 32);
  const impossible = reconstructLayout(g80, 1, { '4g.40gb': 2 });
  t.match(impossible.problem, /cannot be laid out legally on 1/);
});

t.test('property: any sequence of chosen placements stays legal, on every geometry', async (t) => {
  const geometries = Object.values(MIG_GEOMETRIES);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: geometries.length - 1 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (gi, picks) => {
        const geometry = geometries[gi]!;
        const layout: MigInstance[] = [];
        for (const pick of picks) {
          const p = geometry.profiles[pick % geometry.profiles.length]!;
          const start = choosePlacement(geometry, layout, p);
          if (start !== null) layout.push({ profile: p.name, start });
        }
        const compute = layout.reduce((s, i) => s + migProfile(geometry, i.profile)!.computeSlices, 0);
        return layoutProblems(geometry, layout).length === 0 && compute <= geometry.computeSlices;
      },
    ),
    { numRuns: 500, seed: 7 },
  );
  t.pass('the property held for every generated case');
});
