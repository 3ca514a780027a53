// `tessera explain` says why a node is refused for a pool that the node agent serves: no agent there, or not the
// enforcement the pool requires.

import t from 'tap';
import { explain } from '../../../cli/explain.ts';
import { EXAMPLE_POLICY_TEXT, examplePolicy } from '../../fixtures/admission.ts';
import { fractionH100 } from '../../fixtures/nodes.ts';
import { pod } from '../../fixtures/pods.ts';

t.test('explain names NodeAgentMissing and EnforcementMissing per node', async (t) => {
  const policy = examplePolicy(
    EXAMPLE_POLICY_TEXT.replace(
      '      fractionMode: fraction\n',
      '      fractionMode: fraction\n      delivery: { enforcement: hami-core }\n',
    ),
  );
  const pooled = (extra: Record<string, string>) => ({ labels: { 'tessera.io/pool': 'shared-h100', ...extra } });
  const nodes = [
    fractionH100('plain', 2, pooled({})),
    fractionH100('agent', 2, pooled({ 'tessera.io/node-agent': 'serving', 'tessera.io/gpu-enforcement': 'none' })),
    fractionH100('hami', 2, pooled({ 'tessera.io/node-agent': 'serving', 'tessera.io/gpu-enforcement': 'hami-core' })),
  ];
  const namespaces = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } },
  ];
  const p = pod('q').ns('vision').annotate('tessera.io/gpu-fraction', '0.25').build();
  const e = explain(p, nodes, [], namespaces, policy);
  const byNode = Object.fromEntries(e.nodes.map((n) => [n.name, n]));
  t.match(byNode.plain, {
    feasible: false,
    reason: /^NodeAgentMissing: pool shared-h100 delivers GPUs through Tessera's node agent/,
  });
  t.match(byNode.agent, {
    feasible: false,
    reason:
      /^EnforcementMissing: pool shared-h100 requires hami-core enforcement, but node agent reports tessera.io\/gpu-enforcement=none/,
  });
  t.match(byNode.hami, { feasible: true });
});
