// `tessera explain`: why a pod would (not) be placed, node by node, with the same code as the extender's filter,
// prioritize and bind: verdict, reason and score per node, the placement bind would commit, and on nodes whose GPUs a
// DRA driver publishes, their pools, devices and the claims that hold them.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { staticClusterView } from '../core/admission/cluster-view.ts';
import { runAdmission } from '../core/admission/pipeline.ts';
import type { GpuShare } from '../core/assignment.ts';
import { parseDemand, wantsGpu } from '../core/demand.ts';
import type { KubeNamespace, KubeNode, KubePod } from '../core/kube-objects.ts';
import type { Policy } from '../core/policy/model.ts';
import { parseAssignment } from '../core/assignment.ts';
import { ASSIGNMENT, TENANT_LABEL } from '../core/well-known-names.ts';
import { evaluateNodes, inPool, podContext, quotaReason } from '../core/scheduling/evaluate.ts';
import type {
  KubeDeviceClass,
  KubeResourceClaim,
  KubeResourceClaimTemplate,
  KubeResourceSlice,
} from '../core/dra/objects.ts';
import { listDraObjects } from '../server/dra-objects.ts';
import { SchedulingState } from '../core/scheduling/state.ts';
import { normaliseScores } from '../core/scoring/normalise.ts';
import { DEFAULT_STRATEGY, strategyNamed } from '../core/scoring/strategy-registry.ts';
import { scoringContext } from '../core/scoring/strategy.ts';
import { gpuPodShapes, typicalShapes } from '../core/scoring/workload-profile.ts';
import { fromApi, loadKubeconfig } from './kube.ts';
import { parseObjects, readObjects } from './objects.ts';
import { loadPolicy } from './policy-files.ts';
import { EXPLAIN_USAGE, UsageError } from './help.ts';

/** The identity explain admits the pod as: treated as one of Tessera's own, so that a pod dumped from the cluster,
 * which carries system-owned annotations, is not denied for them. */
const EXPLAIN_USER = 'tessera:explain';

export interface Explanation {
  readonly pod: string;
  /** What the webhook would answer for this pod (null when there is no policy to judge it by). */
  readonly admission: { readonly allowed: boolean; readonly message: string | null } | null;
  /** What the reader must know to trust the verdicts (assumptions, things explain could not do). */
  readonly notes: readonly string[];
  /** Problems found in the cluster state (unreadable GPU records of running pods). */
  readonly problems: readonly string[];
  readonly nodes: { name: string; feasible: boolean; score: number | null; reason: string | null }[];
  readonly choice: { node: string; gpus: GpuShare[] } | null;
  /** Nodes whose GPUs a DRA driver publishes: their pools, devices, and the allocated claims that hold devices. */
  readonly dra: readonly DraNodeReport[];
}

export interface DraNodeReport {
  readonly node: string;
  /** The policy's pools the node is in. */
  readonly pools: readonly string[];
  /** The drivers' ResourceSlice pools (`driver/pool`). */
  readonly driverPools: readonly string[];
  readonly model: string | null;
  readonly devices: number;
  /** Devices no allocated claim holds. */
  readonly free: number;
  readonly claims: readonly { claim: string; devices: readonly string[]; consumers: readonly string[] }[];
}

/** What DRA shows on each node: the scheduler state's ResourceSlices and ResourceClaims, read back. */
function draReport(state: SchedulingState, policy: Policy | null): DraNodeReport[] {
  return state.dra
    .nodeNames()
    .sort()
    .map((name) => {
      const n = state.dra.node(name)!;
      const inventory = state.nodes.get(name);
      return {
        node: name,
        pools: inventory && policy ? policy.pools.filter((p) => inPool(inventory, p)).map((p) => p.name) : [],
        driverPools: [...new Set(n.devices.map((d) => `${d.driver}/${d.pool}`))].sort(),
        model: n.model,
        devices: n.devices.length,
        free: n.devices.filter((d) => state.dra.holders(d.key).length === 0).length,
        claims: state.dra.claimsOn(name).map((c) => ({
          ...c,
          devices: c.devices.map((k) => k.split('/').slice(2).join('/')),
        })),
      };
    });
}

/** Feeds DRA objects (DeviceClasses, ResourceClaims, ResourceClaimTemplates, ResourceSlices) into the state. */
function loadDra(state: SchedulingState, objects: readonly unknown[]): void {
  for (const o of objects) {
    const kind = (o as { kind?: string }).kind;
    if (kind === 'DeviceClass') state.dra.upsertClass(o as KubeDeviceClass);
    else if (kind === 'ResourceClaim') state.dra.upsertClaim(o as KubeResourceClaim);
    else if (kind === 'ResourceClaimTemplate') state.dra.upsertTemplate(o as KubeResourceClaimTemplate);
    else if (kind === 'ResourceSlice') state.dra.upsertSlice(o as KubeResourceSlice);
  }
}

export interface ExplainOptions {
  readonly strategy?: string;
  /**
   * The pod already exists in the cluster (explain POD -n NS): the webhook admitted it once, so a denial under the
   * current policy is a note (drift), not a verdict.
   */
  readonly existing?: boolean;
  /** DRA objects of the cluster (DeviceClasses, ResourceClaims, ResourceClaimTemplates, ResourceSlices). */
  readonly dra?: readonly unknown[];
}

/** Where a pod runs or is being bound to: spec.nodeName, else the node its assignment names. */
function nodeOf(pod: KubePod): string | null {
  if (pod.spec?.nodeName) return pod.spec.nodeName;
  const text = pod.metadata?.annotations?.[ASSIGNMENT];
  if (text === undefined) return null;
  const a = parseAssignment(text);
  return typeof a === 'string' ? null : a.node;
}

const nameOf = (p: KubePod) => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;

export function explain(
  pod: KubePod,
  nodes: readonly KubeNode[],
  pods: readonly KubePod[],
  namespaces: readonly KubeNamespace[],
  policy: Policy | null,
  strategyName = DEFAULT_STRATEGY,
  options: ExplainOptions = {},
): Explanation {
  // As the webhook sees it: JSON. The API client hands out Date objects (creationTimestamp, managedFields times),
  // which the mutating stage's JSON Patch diff would otherwise walk into.
  pod = JSON.parse(JSON.stringify(pod)) as KubePod;
  const state = new SchedulingState();
  state.setPolicy(policy);
  for (const ns of namespaces) state.upsertNamespace(ns);
  for (const n of nodes) state.upsertNode(n);
  // Before the pods: what a pod holds through its claims depends on them.
  loadDra(state, options.dra ?? []);
  const others = pods.filter((p) => p.metadata?.uid === undefined || p.metadata.uid !== pod.metadata?.uid);
  for (const p of others) state.upsertPod(p);
  const shapes = gpuPodShapes(pods);
  const name = nameOf(pod);
  const namespace = pod.metadata?.namespace ?? '';
  const notes: string[] = [];
  const known = namespaces.some((ns) => ns.metadata?.name === namespace);
  if (!known)
    notes.push(
      `namespace ${namespace} is not in the cluster state given, so its tenant is unknown; it is judged as a namespace without a tenant`,
    );
  const tenant = namespaces.find((ns) => ns.metadata?.name === namespace)?.metadata?.labels?.[TENANT_LABEL] || null;

  // Admission: with a policy, the webhook's own pipeline (mutation is idempotent, so an admitted pod passes unchanged).
  let subject = pod;
  let admission: Explanation['admission'] = null;
  const parsed = parseDemand(pod, policy?.accelerators);
  if (policy !== null) {
    const result = runAdmission(
      {
        uid: pod.metadata?.uid ?? 'explain',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        operation: 'CREATE',
        namespace,
        name: pod.metadata?.name ?? '',
        userInfo: { username: EXPLAIN_USER },
        // A pod that exists may be bound already; that is the scheduler's doing, not a nodeName the user set.
        object: options.existing && pod.spec?.nodeName ? { ...pod, spec: { ...pod.spec, nodeName: undefined } } : pod,
      },
      policy,
      staticClusterView(namespaces, others, state.dra),
      { systemUsers: [EXPLAIN_USER] },
    );
    admission = { allowed: result.response.allowed, message: result.response.status?.message ?? null };
    if (result.response.allowed || result.deniedBy === 'validation') subject = result.object as KubePod;
  } else {
    notes.push('no --policy: admission is not checked and the pod is placed as written');
    if (parsed.ok && wantsGpu(parsed.demand) && Object.keys(parsed.demand.gpuResources).length === 0) {
      const asked = Object.entries(pod.metadata?.annotations ?? {})
        .filter(([k]) => k.startsWith('tessera.io/'))
        .map(([k, v]) => `${k}=${v}`)
        .join(', ');
      notes.push(
        `the pod asks for GPUs only through annotations (${asked}), which the webhook turns into resources; without --policy it is explained as a pod without GPUs. Pass --policy to apply the webhook's mutation`,
      );
    }
    if (parsed.ok && wantsGpu(parsed.demand) && tenant === null)
      admission = {
        allowed: false,
        message: `namespace ${namespace} has no ${TENANT_LABEL} label, and the webhook gives no GPUs to a namespace without a tenant; ask a platform admin to label the namespace with its tenant`,
      };
  }
  if (admission !== null && !admission.allowed && options.existing)
    notes.push(
      `this pod exists, so the webhook admitted it once; under the current policy it would be denied now: ${admission.message ?? ''}`,
    );
  const denied = admission !== null && !admission.allowed && !options.existing;

  // Running pods whose GPU record cannot be read hold GPUs nobody can name: offer none of that node's GPUs.
  const problems: string[] = [];
  const unknownGpus = new Map<string, string>();
  for (const p of others) {
    const problem = state.problems.get(p.metadata?.uid ?? '');
    if (problem === undefined) continue;
    problems.push(problem);
    const node = nodeOf(p);
    if (node !== null && !unknownGpus.has(node)) unknownGpus.set(node, nameOf(p));
  }

  const ctx = podContext(state, subject);
  const names = [...state.nodes.keys()].sort();
  const result = (nodeVerdicts: Explanation['nodes'], choice: Explanation['choice']): Explanation => ({
    pod: name,
    admission,
    notes,
    problems,
    nodes: nodeVerdicts,
    choice: denied ? null : choice,
    dra: draReport(state, policy),
  });
  if (denied)
    return result(
      names.map((n) => ({
        name: n,
        feasible: false,
        score: null,
        reason: `the webhook would deny this pod, so it never reaches the scheduler: ${admission?.message ?? ''}`,
      })),
      null,
    );
  if (!ctx.ok)
    return result(
      names.map((n) => ({ name: n, feasible: false, score: null, reason: ctx.reason.message })),
      null,
    );
  const wantsGpus = wantsGpu(ctx.pod.demand);
  const verdicts = evaluateNodes(
    state,
    ctx.pod,
    names,
    strategyNamed(strategyName),
    scoringContext(typicalShapes(shapes), state.capacityByModel()),
    null,
  ).map((v) => {
    const holder = unknownGpus.get(v.node);
    if (!wantsGpus || holder === undefined || !v.feasible) return v;
    return {
      ...v,
      feasible: false,
      score: 0,
      placement: null,
      reason: {
        code: 'NodeUnusable' as const,
        message: `NodeUnusable: pod ${holder} runs here but its GPU record cannot be read (see problems), so which GPUs it holds is unknown; explain offers none of this node's GPUs until that is fixed`,
        unresolvable: true,
      },
    };
  });
  const feasible = verdicts.filter((v) => v.feasible);
  const scores = normaliseScores(feasible.map((v) => v.score));
  const scoreOf = new Map(feasible.map((v, i) => [v.node, scores[i]!]));
  const quota = quotaReason(state, ctx.pod);
  let best: (typeof verdicts)[number] | null = null;
  for (const v of feasible) if (best === null || v.score > best.score) best = v;
  return result(
    verdicts.map((v) => ({
      name: v.node,
      feasible: v.feasible && quota === null,
      score: v.feasible ? scoreOf.get(v.node)! : null,
      reason: quota && v.feasible ? quota.message : (v.reason?.message ?? null),
    })),
    best === null || quota !== null ? null : { node: best.node, gpus: [...(best.placement?.gpus ?? [])] },
  );
}

function format(e: Explanation): string {
  const lines = [`pod ${e.pod}:`];
  if (e.admission !== null)
    lines.push(
      e.admission.allowed
        ? '  admission: the webhook would admit it'
        : `  admission: the webhook would DENY it: ${e.admission.message ?? ''}`,
    );
  for (const n of e.notes) lines.push(`  note: ${n}`);
  for (const p of e.problems) lines.push(`  problem in the cluster state: ${p}`);
  lines.push('');
  const width = Math.max(4, ...e.nodes.map((n) => n.name.length));
  for (const n of e.nodes)
    lines.push(
      `  ${n.name.padEnd(width)}  ${n.feasible ? `fits    score ${String(n.score).padStart(2)}` : 'no fit  '}${n.reason ? `  ${n.reason}` : ''}`,
    );
  if (e.dra.length > 0) {
    lines.push('', '  DRA (ResourceSlices, and the allocated ResourceClaims that hold devices):');
    const w = Math.max(4, ...e.dra.map((d) => d.node.length));
    for (const d of e.dra) {
      lines.push(
        `  ${d.node.padEnd(w)}  ${d.pools.length ? `pool ${d.pools.join(', ')}; ` : ''}${d.driverPools.join(', ')}: ${d.devices} device(s)${d.model ? ` (${d.model})` : ''}, ${d.free} free`,
      );
      for (const c of d.claims)
        lines.push(
          `  ${''.padEnd(w)}    claim ${c.claim} holds ${c.devices.join(', ')}${c.consumers.length ? ` for ${c.consumers.join(', ')}` : ' (reserved for no pod)'}`,
        );
    }
  }
  if (e.admission !== null && !e.admission.allowed && e.choice === null && e.nodes.every((n) => !n.feasible))
    lines.push('', 'no placement: the webhook would deny the pod (see admission above)');
  else if (e.choice === null) lines.push('', 'no node fits: the pod stays Pending with the reasons above');
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
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const policy = values.policy ? loadPolicy(values.policy) : null;
  let result: Explanation;
  if (values.snapshot) {
    if (!values.pod) throw new UsageError('--pod is required with --snapshot', EXPLAIN_USAGE);
    const snapshot = readObjects(values.snapshot);
    const pods = parseObjects(readFileSync(values.pod, 'utf8'), values.pod).filter(
      (o) => (o as { kind?: string }).kind === 'Pod',
    ) as KubePod[];
    if (pods.length !== 1) throw new Error(`${values.pod} must hold exactly one Pod`);
    const subject = pods[0]!;
    if (!subject.metadata?.namespace) (subject.metadata ??= {}).namespace = 'default';
    result = explain(subject, snapshot.nodes, snapshot.pods, snapshot.namespaces, policy, values.strategy, {
      existing: false,
      dra: snapshot.other,
    });
  } else {
    if (positionals.length !== 1 || !values.namespace)
      throw new UsageError('name a pod and its namespace, or use --snapshot', EXPLAIN_USAGE);
    const kc = loadKubeconfig(values.kubeconfig, values.context);
    const core = kc.makeApiClient(CoreV1Api);
    const name = positionals[0]!;
    const namespace = values.namespace;
    const pod = await fromApi(kc, `read pod ${namespace}/${name}`, () => core.readNamespacedPod({ name, namespace }));
    const [nodes, pods, namespaces, dra] = await fromApi(kc, 'list nodes, pods, namespaces and DRA objects', () =>
      Promise.all([core.listNode(), core.listPodForAllNamespaces(), core.listNamespace(), listDraObjects(kc, true)]),
    );
    result = explain(
      pod as KubePod,
      nodes.items as KubeNode[],
      pods.items as KubePod[],
      namespaces.items as KubeNamespace[],
      policy,
      values.strategy,
      { existing: true, dra },
    );
  }
  console.log(
    values.json
      ? JSON.stringify(
          {
            pod: result.pod,
            admission: result.admission,
            notes: result.notes,
            problems: result.problems,
            nodes: result.nodes.map(({ name, feasible, score, reason }) => ({ name, feasible, score, reason })),
            choice: result.choice,
            dra: result.dra,
          },
          null,
          2,
        )
      : format(result),
  );
  return 0;
}
