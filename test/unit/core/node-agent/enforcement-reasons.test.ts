// Pools served by the node agent: the extender refuses nodes without the agent and, where the pool requires
// enforcement, nodes whose agent does not report it, with reason codes `tessera explain` shows.

import t from 'tap';
import { evaluateNodes, podContext } from '../../../../core/scheduling/evaluate.ts';
import { SchedulingState } from '../../../../core/scheduling/state.ts';
import { fragmentationAware } from '../../../../core/scoring/fragmentation-aware.ts';
import { scoringContext } from '../../../../core/scoring/strategy.ts';
import { EXAMPLE_POLICY_TEXT, examplePolicy, NAMESPACES } from '../../../fixtures/admission.ts';
import { fractionH100 } from '../../../fixtures/nodes.ts';
import { pod } from '../../../fixtures/pods.ts';
import { desiredMilli } from '../../../../extender/capacity.ts';

const policyWith = (delivery: string) =>
  examplePolicy(
    EXAMPLE_POLICY_TEXT.replace(
      '      fractionMode: fraction\n',
      `      fractionMode: fraction\n      delivery: ${delivery}\n`,
    ),
  );

function state(delivery: string) {
  const s = new SchedulingState();
  s.setPolicy(policyWith(delivery));
  for (const ns of NAMESPACES) s.upsertNamespace(ns);
  const labels = (extra: Record<string, string>) => ({ labels: { 'tessera.io/pool': 'shared-h100', ...extra } });
  s.upsertNode(fractionH100('plain', 2, labels({})));
  s.upsertNode(
    fractionH100('agent', 2, labels({ 'tessera.io/node-agent': 'serving', 'tessera.io/gpu-enforcement': 'none' })),
  );
  s.upsertNode(
    fractionH100('hami', 2, labels({ 'tessera.io/node-agent': 'serving', 'tessera.io/gpu-enforcement': 'hami-core' })),
  );
  s.upsertNode(
    fractionH100('mps', 2, labels({ 'tessera.io/node-agent': 'serving', 'tessera.io/gpu-enforcement': 'mps' })),
  );
  return s;
}

const verdicts = (delivery: string) => {
  const s = state(delivery);
  const ctx = podContext(
    s,
    pod('half').ns('research-a').gpuMilli(500).annotate('tessera.io/pool', 'shared-h100').build(),
  );
  if (!ctx.ok) throw new Error('readable');
  return Object.fromEntries(
    evaluateNodes(s, ctx.pod, ['plain', 'agent', 'hami', 'mps'], fragmentationAware, scoringContext(), null).map(
      (v) => [v.node, v.feasible ? 'ok' : v.reason!.code],
    ),
  );
};

t.test('an agent pool needs the agent on the node', async (t) => {
  t.same(verdicts('{ mode: cdi-cri }'), { plain: 'NodeAgentMissing', agent: 'ok', hami: 'ok', mps: 'ok' });
});

t.test('required enforcement filters nodes by what their agent reports', async (t) => {
  t.same(verdicts('{ enforcement: hami-core }'), {
    plain: 'NodeAgentMissing',
    agent: 'EnforcementMissing',
    hami: 'ok',
    mps: 'EnforcementMissing',
  });
  t.same(verdicts('{ enforcement: any }'), {
    plain: 'NodeAgentMissing',
    agent: 'EnforcementMissing',
    hami: 'ok',
    mps: 'ok',
  });
  const s = state('{ enforcement: mps }');
  const ctx = podContext(s, pod('q').ns('research-a').gpuMilli(250).annotate('tessera.io/pool', 'shared-h100').build());
  if (!ctx.ok) throw new Error('readable');
  const [v] = evaluateNodes(s, ctx.pod, ['agent'], fragmentationAware, scoringContext(), null);
  t.match(v!.reason!.message, /requires mps enforcement, but node agent reports tessera.io\/gpu-enforcement=none/);
  t.equal(v!.reason!.unresolvable, true, 'preemption cannot cure it');
});

t.test('a pool without delivery places pods as before', async (t) => {
  const s = new SchedulingState();
  s.setPolicy(examplePolicy());
  for (const ns of NAMESPACES) s.upsertNamespace(ns);
  s.upsertNode(fractionH100('plain', 2, { labels: { 'tessera.io/pool': 'shared-h100' } }));
  const ctx = podContext(
    s,
    pod('half').ns('research-a').gpuMilli(500).annotate('tessera.io/pool', 'shared-h100').build(),
  );
  if (!ctx.ok) throw new Error('readable');
  t.equal(evaluateNodes(s, ctx.pod, ['plain'], fragmentationAware, scoringContext(), null)[0]!.feasible, true);
});

t.test('one writer of gpu-milli: the extender leaves nodes where the agent serves', async (t) => {
  t.equal(desiredMilli(fractionH100('plain', 2)), 2000);
  t.equal(desiredMilli(fractionH100('agent', 2, { labels: { 'tessera.io/node-agent': 'serving' } })), null);
});
