import t from 'tap';
import {
  evaluateNode,
  evaluateNodes,
  podContext,
  quotaReason,
  VerdictCache,
} from '../../../../core/scheduling/evaluate.ts';
import { SchedulingState } from '../../../../core/scheduling/state.ts';
import { fragmentationAware } from '../../../../core/scoring/fragmentation-aware.ts';
import { scoringContext } from '../../../../core/scoring/strategy.ts';
import { examplePolicy, NAMESPACES } from '../../../fixtures/admission.ts';
import { allocation } from '../../../fixtures/allocations.ts';
import { fractionH100, migA100 } from '../../../fixtures/nodes.ts';
import { pod } from '../../../fixtures/pods.ts';

const pooled = (name: string) => ({ labels: { 'tessera.io/pool': name } });

function cluster(): SchedulingState {
  const state = new SchedulingState();
  state.setPolicy(examplePolicy());
  for (const ns of NAMESPACES) state.upsertNamespace(ns);
  state.upsertNode(fractionH100('h', 2, pooled('shared-h100')));
  const mig = migA100('a', 1);
  mig.metadata!.labels!['tessera.io/pool'] = 'a100-mig';
  state.upsertNode(mig);
  return state;
}

const half = () => pod('half').ns('research-a').gpuMilli(500).annotate('tessera.io/pool', 'shared-h100');

t.test('a malformed GPU request is InvalidRequest on every node, not a mode mismatch', async (t) => {
  const r = podContext(cluster(), pod('bad').ns('research-a').annotate('tessera.io/gpu-fraction', '1.5').build());
  t.equal(r.ok, false);
  if (!r.ok) {
    t.equal(r.reason.code, 'InvalidRequest');
    t.equal(r.reason.unresolvable, true);
    t.match(r.reason.message, /tessera.io\/gpu-fraction/);
  }
});

t.test("nodes outside the pod's pool are refused as such; inside, the fit decides", async (t) => {
  const state = cluster();
  const ctx = podContext(state, half().build());
  if (!ctx.ok) throw new Error('readable');
  const [a, h] = evaluateNodes(state, ctx.pod, ['a', 'h'], fragmentationAware, scoringContext(), null);
  t.equal(a?.reason?.code, 'NodeNotInPool');
  t.equal(h?.feasible, true);
  t.equal(h?.placement?.gpus[0]?.milli, 500);
  t.equal(evaluateNode(state, ctx.pod, 'gone', fragmentationAware, scoringContext()).reason?.code, 'UnknownNode');
});

t.test('cached verdicts die with the node usage they were made on', async (t) => {
  const state = cluster();
  const ctx = podContext(state, half().build());
  if (!ctx.ok) throw new Error('readable');
  const cache = new VerdictCache();
  const first = evaluateNodes(state, ctx.pod, ['h'], fragmentationAware, scoringContext(), cache)[0]!;
  t.equal(
    evaluateNodes(state, ctx.pod, ['h'], fragmentationAware, scoringContext(), cache)[0],
    first,
    'a hit returns the same verdict',
  );
  state.ledger.add(allocation('x').on('h').gpu(0, 1000).build());
  state.ledger.add(allocation('y').on('h').gpu(1, 600).build());
  const after = evaluateNodes(state, ctx.pod, ['h'], fragmentationAware, scoringContext(), cache)[0]!;
  t.equal(after.feasible, false, 'recomputed after the usage changed');
  t.equal(after.reason?.code, 'GpuCompute');
});

t.test('the verdict cache is bounded in entries and shapes, dropping the least recently asked shape', async (t) => {
  const cache = new VerdictCache(5, 3);
  const fill = (shape: string, nodes: number) => {
    const m = cache.shape(shape);
    for (let i = 0; i < nodes; i++) m.set(`n${i}`, {} as never);
  };
  fill('a', 2);
  fill('b', 2);
  t.equal(cache.size, 4);
  cache.shape('a'); // a is now the most recent
  fill('c', 2);
  t.equal(cache.size, 6, 'a request may go over the bound by its own names');
  t.equal(cache.shape('a').size, 2, 'a kept');
  t.equal(cache.size, 4, 'settled at the next request: b, the least recently asked, dropped');
  t.equal(cache.shape('b').size, 0, 'b dropped');
  // Asked now, most recent last: c, a, b. Two more shapes: c and a go to keep 3 shapes.
  fill('d', 0);
  fill('e', 0);
  t.equal(cache.size, 0, 'c and a dropped by the shape bound');
  const big = cache.shape('huge');
  for (let i = 0; i < 50; i++) big.set(`n${i}`, {} as never);
  cache.shape('huge');
  t.equal(cache.size, 50, 'one request over the bound keeps its own shape, and only it');
});

t.test('quota at bind counts what the tenant holds, without the pod itself', async (t) => {
  const state = cluster();
  const ctx = podContext(state, half().build());
  if (!ctx.ok) throw new Error('readable');
  t.equal(quotaReason(state, ctx.pod), null, 'nothing held yet');
  state.ledger.add(allocation('big').tenant('research').on('h').gpu(0, 1000).equivalents(11.75).build());
  const over = quotaReason(state, ctx.pod);
  t.equal(over?.code, 'QuotaExceeded');
  t.match(over?.message, /holds 11.75 of its 12 GPU-equivalents; this pod needs 0.5/);
  state.ledger.add(allocation('half').uid('uid-half').tenant('research').on('h').gpu(1, 500).equivalents(0.5).build());
  t.equal(quotaReason(state, ctx.pod)?.code, 'QuotaExceeded', 'its own earlier record does not count twice');
  state.ledger.remove('big');
  t.equal(quotaReason(state, ctx.pod), null);
});
