// What a Kueue Workload asks of Tessera, read from its pod sets (kueue.x-k8s.io/v1beta2 Workload spec.podSets: name,
// count, template): the pods its Job will create, as Tessera's webhook will see them, and in which of the tenant's
// pools each pod set may run. The manager's dispatcher and each worker's tessera.io/gpu-fit check read jobs this way.

import { parseDemand, wantsGpu, type PodDemand } from '../demand.ts';
import type { KubePod, ObjectMeta, PodSpec } from '../kube-objects.ts';
import { decideGpu } from '../pools/gpu-decision.ts';
import { poolNamed, type Policy, type Pool, type Tenant } from '../policy/model.ts';

export interface WorkloadPodSet {
  readonly name: string;
  readonly count: number;
  readonly template: { readonly metadata?: ObjectMeta; readonly spec?: PodSpec };
}

/** The pod sets of a Workload object, or what is wrong with it. */
export function podSetsOf(workload: unknown): WorkloadPodSet[] | string {
  const sets = (workload as { spec?: { podSets?: unknown } } | null)?.spec?.podSets;
  if (!Array.isArray(sets) || sets.length === 0) return 'the workload has no spec.podSets';
  const out: WorkloadPodSet[] = [];
  for (const s of sets as unknown[]) {
    const ps = s as Partial<WorkloadPodSet> | null;
    if (typeof ps?.name !== 'string' || !Number.isInteger(ps.count) || typeof ps.template !== 'object' || !ps.template)
      return 'each pod set needs a name, an integer count and a template';
    out.push({ name: ps.name, count: ps.count!, template: ps.template });
  }
  return out;
}

/** One pod of the pod set as the Job controller will create it (the labels, annotations and spec of the template). */
export function podOfSet(
  ps: WorkloadPodSet,
  namespace: string,
  index: number,
  extraNodeSelector: Readonly<Record<string, string>> = {},
): KubePod {
  const spec = structuredClone(ps.template.spec ?? {}) as PodSpec;
  if (Object.keys(extraNodeSelector).length > 0) spec.nodeSelector = { ...spec.nodeSelector, ...extraNodeSelector };
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${ps.name}-${index}`,
      namespace,
      uid: `fleet-${namespace}-${ps.name}-${index}`,
      labels: { ...ps.template.metadata?.labels },
      annotations: { ...ps.template.metadata?.annotations },
    },
    spec,
  };
}

export interface PoolOption {
  readonly pool: Pool;
  /** What one pod of the set weighs in this pool, in GPU-equivalents. */
  readonly equivalents: number;
}

export interface PodSetAsk {
  readonly name: string;
  readonly count: number;
  readonly demand: PodDemand;
  readonly gpu: boolean;
  /** The tenant's pools that can meet one pod of the set, in the tenant's order. */
  readonly options: readonly PoolOption[];
}

/** The ask of each pod set; a malformed GPU request is an error message (the webhook would deny it the same way). */
export function podSetAsks(
  podSets: readonly WorkloadPodSet[],
  namespace: string,
  tenant: Tenant,
  policy: Policy,
): PodSetAsk[] | string {
  const out: PodSetAsk[] = [];
  for (const ps of podSets) {
    const pod = podOfSet(ps, namespace, 0);
    const parsed = parseDemand(pod);
    if (!parsed.ok) return `pod set ${ps.name}: ${parsed.error.field}: ${parsed.error.message}`;
    const gpu = wantsGpu(parsed.demand);
    const options: PoolOption[] = [];
    if (gpu)
      for (const name of tenant.pools) {
        const pool = poolNamed(policy, name);
        if (!pool) continue;
        const d = decideGpu(parsed.demand, { ...tenant, pools: [name] }, policy, pod.spec?.nodeSelector ?? {});
        if (d.ok && (parsed.demand.intent.pool === null || parsed.demand.intent.pool === name))
          options.push({ pool, equivalents: d.plan.equivalents });
      }
    out.push({ name: ps.name, count: ps.count, demand: parsed.demand, gpu, options });
  }
  return out;
}
