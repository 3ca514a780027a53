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
