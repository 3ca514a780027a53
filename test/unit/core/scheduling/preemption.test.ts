import fc from 'fast-check';
import t from 'tap';
import type { Allocation } from '../../../../core/allocation.ts';
import { fit } from '../../../../core/fit.ts';
import { podContext } from '../../../../core/scheduling/evaluate.ts';
import { chooseVictims, mayPreempt, type Preemptor } from '../../../../core/scheduling/preemption.ts';
import { SchedulingState } from '../../../../core/scheduling/state.ts';
import { examplePolicy, NAMESPACES } from '../../../fixtures/admission.ts';
import { allocation } from '../../../fixtures/allocations.ts';
import { fractionH100 } from '../../../fixtures/nodes.ts';
import { pod } from '../../../fixtures/pods.ts';

function cluster(gpus: number): SchedulingState {
  const state = new SchedulingState();
  state.setPolicy(examplePolicy());
  for (const ns of NAMESPACES) state.upsertNamespace(ns);
  state.upsertNode(fractionH100('h', gpus, { labels: { 'tessera.io/pool': 'shared-h100' } }));
  return state;
}

function preemptor(state: SchedulingState, milli: number, priority: number, ns = 'research-a'): Preemptor {
  const p = pod('p').ns(ns).gpuMilli(milli).annotate('tessera.io/pool', 'shared-h100').build();
  const ctx = podContext(state, p);
  if (!ctx.ok) throw new Error('readable');
  return { ctx: ctx.pod, priority };
}

function fitsWithout(state: SchedulingState, p: Preemptor, victims: readonly Allocation[]): boolean {
  const after = state.ledger.usage('h').copy();
  for (const v of victims) after.apply(v, -1);
  return fit(state.nodes.get('h')!, after, p.ctx.demand, state.fitContext(p.ctx.tenant)).ok;
}

t.test('fewest victims on one GPU, lowest priority first among equals', async (t) => {
  const state = cluster(2);
  state.ledger.add(allocation('a').tenant('research').on('h').gpu(0, 300).priority(5).build());
  state.ledger.add(allocation('b').tenant('research').on('h').gpu(0, 300).priority(1).build());
  state.ledger.add(allocation('c').tenant('research').on('h').gpu(0, 400).priority(1).build());
  state.ledger.add(allocation('d').tenant('research').on('h').gpu(1, 900).priority(1).build());
  const victims = chooseVictims(state, preemptor(state, 400, 10), 'h');
  t.same(
    victims?.map((v) => v.uid),
    ['c'],
    'one 400m pod on GPU 0 beats a 900m pod on GPU 1 (same count, fewer milli freed)',
  );
  t.same(chooseVictims(state, preemptor(state, 100, 10), 'h'), [], 'room already: no victims');
  t.equal(chooseVictims(state, preemptor(state, 400, 1), 'h'), null, 'nobody below priority 1');
});

t.test('assumed placements (a bind under way) are never victims', async (t) => {
  const state = cluster(1);
  state.ledger.add(allocation('x').tenant('research').on('h').gpu(0, 1000).assumedUntil(10).build());
  t.equal(mayPreempt(state, preemptor(state, 500, 10), state.ledger.get('x')!), false);
  t.equal(chooseVictims(state, preemptor(state, 500, 10), 'h'), null);
});

t.test('property: victims are allowed, make room, and none of them is spare', async (t) => {
  const share = fc.record({
    gpu: fc.nat(3),
    milli: fc.integer({ min: 50, max: 1000 }),
    priority: fc.integer({ min: 0, max: 4 }),
    foreign: fc.boolean(),
  });
  fc.assert(
    fc.property(
      fc.array(share, { maxLength: 16 }),
      fc.integer({ min: 50, max: 1000 }),
      fc.integer({ min: 0, max: 5 }),
      (shares, milli, priority) => {
        const state = cluster(4);
        const used = [0, 0, 0, 0];
        shares.forEach((s, i) => {
          if (used[s.gpu]! + s.milli > 1000) return;
          used[s.gpu]! += s.milli;
          const a = allocation(`v${i}`)
            .tenant(s.foreign ? 'payments-ml' : 'research')
            .on('h')
            .gpu(s.gpu, s.milli)
            .priority(s.priority);
          state.ledger.add(a.build());
        });
        const p = preemptor(state, milli, priority);
        const victims = chooseVictims(state, p, 'h');
        const eligible = state.ledger.allocationsOn('h').filter((a) => mayPreempt(state, p, a));
        if (victims === null) return !fitsWithout(state, p, eligible);
        if (!victims.every((v) => mayPreempt(state, p, v))) return false;
        if (!fitsWithout(state, p, victims)) return false;
        return victims.every(
          (v) =>
            !fitsWithout(
              state,
              p,
              victims.filter((w) => w !== v),
            ),
        );
      },
    ),
    { numRuns: 300, seed: 11 },
  );
  t.pass('300 random GPU fillings');
});
