// `tessera explain`: why a pod would (not) be placed, node by node, with the same code as the extender's filter,
// prioritize and bind: verdict, reason and score per node, and the placement bind would commit.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { mutatePod } from '../core/admission/mutate.ts';
import type { GpuShare } from '../core/assignment.ts';
import type { KubeNamespace, KubeNode, KubePod } from '../core/kube-objects.ts';
import type { Policy } from '../core/policy/model.ts';
import { POOL_ANNOTATION } from '../core/well-known-names.ts';
import { evaluateNodes, podContext, quotaReason } from '../core/scheduling/evaluate.ts';
import { SchedulingState } from '../core/scheduling/state.ts';
import { normaliseScores } from '../core/scoring/normalise.ts';
import { DEFAULT_STRATEGY, strategyNamed } from '../core/scoring/strategy-registry.ts';
import { scoringContext } from '../core/scoring/strategy.ts';
import { gpuPodShapes, typicalShapes } from '../core/scoring/workload-profile.ts';
import { parseObjects, readObjects } from './objects.ts';
import { loadPolicy } from './policy-files.ts';

export const EXPLAIN_USAGE = `tessera explain --snapshot FILE --pod FILE [--policy FILE|DIR] [--strategy NAME] [--json]
tessera explain POD -n NAMESPACE [--policy FILE|DIR] [--json]      (live cluster of the current kubeconfig)`;

export interface Explanation {
  readonly pod: string;
  readonly nodes: { name: string; feasible: boolean; score: number | null; reason: string | null }[];
  readonly choice: { node: string; gpus: GpuShare[] } | null;
}

export function explain(
  pod: KubePod,
  nodes: readonly KubeNode[],
  pods: readonly KubePod[],
  namespaces: readonly KubeNamespace[],
  policy: Policy | null,
  strategyName = DEFAULT_STRATEGY,
): Explanation {
  const state = new SchedulingState();
  state.setPolicy(policy);
  for (const ns of namespaces) state.upsertNamespace(ns);
  for (const n of nodes) state.upsertNode(n);
  for (const p of pods) if (p.metadata?.uid !== pod.metadata?.uid) state.upsertPod(p);
  const shapes = gpuPodShapes(pods);
  // The extender sees pods after the webhook: apply the mutating stage when a policy is given and the pod is raw.
  let subject = pod;
  const tenant = state.tenantOf(pod.metadata?.namespace ?? '');
  if (policy !== null && !pod.metadata?.annotations?.[POOL_ANNOTATION]) {
    const mutated = mutatePod(pod, tenant, policy);
    if (mutated.denial === null) subject = mutated.pod;
  }
  const name = `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
  const ctx = podContext(state, subject);
  const names = [...state.nodes.keys()].sort();
  if (!ctx.ok)
    return {
      pod: name,
      nodes: names.map((n) => ({ name: n, feasible: false, score: null, reason: ctx.reason.message })),
      choice: null,
    };
  const verdicts = evaluateNodes(
    state,
    ctx.pod,
    names,
    strategyNamed(strategyName),
    scoringContext(typicalShapes(shapes), state.capacityByModel()),
    null,
  );
  const feasible = verdicts.filter((v) => v.feasible);
  const scores = normaliseScores(feasible.map((v) => v.score));
  const scoreOf = new Map(feasible.map((v, i) => [v.node, scores[i]!]));
  const quota = quotaReason(state, ctx.pod);
  let best: (typeof verdicts)[number] | null = null;
  for (const v of feasible) if (best === null || v.score > best.score) best = v;
  return {
    pod: name,
    nodes: verdicts.map((v) => ({
      name: v.node,
      feasible: v.feasible && quota === null,
      score: v.feasible ? scoreOf.get(v.node)! : null,
      reason: quota && v.feasible ? quota.message : (v.reason?.message ?? null),
    })),
    choice: best === null || quota !== null ? null : { node: best.node, gpus: [...(best.placement?.gpus ?? [])] },
  };
}

function format(e: Explanation): string {
  const lines = [`pod ${e.pod}:`];
  const width = Math.max(4, ...e.nodes.map((n) => n.name.length));
  for (const n of e.nodes)
    lines.push(
      `  ${n.name.padEnd(width)}  ${n.feasible ? `fits    score ${String(n.score).padStart(2)}` : 'no fit  '}${n.reason ? `  ${n.reason}` : ''}`,
    );
  if (e.choice === null) lines.push('', 'no node fits: the pod stays Pending with the reasons above');
  else
    lines.push(
      '',
      `bind would commit node ${e.choice.node}${e.choice.gpus.length ? `, GPUs ${e.choice.gpus.map((g) => `${g.index} (${g.milli}m, ${g.memoryMiB} MiB)`).join(', ')}` : ' (the device plugin picks the device)'}`,
    );
  return lines.join('\n');
}

export async function explainCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      snapshot: { type: 'string' },
      pod: { type: 'string' },
      policy: { type: 'string', multiple: true },
      namespace: { type: 'string', short: 'n' },
      strategy: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const policy = values.policy ? loadPolicy(values.policy) : null;
  let result: Explanation;
  if (values.snapshot) {
    if (!values.pod) throw new Error(`--pod is required with --snapshot\n\n${EXPLAIN_USAGE}`);
    const snapshot = readObjects(values.snapshot);
    const pods = parseObjects(readFileSync(values.pod, 'utf8'), values.pod).filter(
      (o) => (o as { kind?: string }).kind === 'Pod',
    ) as KubePod[];
    if (pods.length !== 1) throw new Error(`${values.pod} must hold exactly one Pod`);
    const subject = pods[0]!;
    if (!subject.metadata?.namespace) (subject.metadata ??= {}).namespace = 'default';
    result = explain(subject, snapshot.nodes, snapshot.pods, snapshot.namespaces, policy, values.strategy);
  } else {
    if (positionals.length !== 1 || !values.namespace)
      throw new Error(`name a pod and its namespace, or use --snapshot\n\n${EXPLAIN_USAGE}`);
    const kc = new KubeConfig();
    kc.loadFromDefault();
    const core = kc.makeApiClient(CoreV1Api);
    const [pod, nodes, pods, namespaces] = await Promise.all([
      core.readNamespacedPod({ name: positionals[0]!, namespace: values.namespace }),
      core.listNode(),
      core.listPodForAllNamespaces(),
      core.listNamespace(),
    ]);
    result = explain(
      pod as KubePod,
      nodes.items as KubeNode[],
      pods.items as KubePod[],
      namespaces.items as KubeNamespace[],
      policy,
      values.strategy,
    );
  }
  console.log(
    values.json
      ? JSON.stringify(
          {
            nodes: result.nodes.map(({ name, feasible, score, reason }) => ({ name, feasible, score, reason })),
            choice: result.choice,
          },
          null,
          2,
        )
      : format(result),
  );
  return 0;
}
