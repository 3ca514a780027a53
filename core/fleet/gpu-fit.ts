// The decision of the tessera.io/gpu-fit AdmissionCheck on a worker cluster: would Tessera run this Workload's pods
// here, now? Ready when its webhook admits every pod (policy) and the tenant's quota and the pools' free GPUs hold
// all of them at once, after what earlier Ready workloads will still take; Pending while they cannot be placed yet
// (quota in use, no room); Rejected only for what no wait can fix (the webhook would deny the pods, or the job alone
// is larger than the tenant's quota). A worker that answers Pending loses MultiKueue's race to one that answers Ready.

import { runAdmission } from '../admission/pipeline.ts';
import { staticClusterView } from '../admission/cluster-view.ts';
import { newAllocation } from '../allocation.ts';
import { parseDemand, wantsGpu } from '../demand.ts';
import { fit } from '../fit.ts';
import type { KubePod } from '../kube-objects.ts';
import type { NodeUsage } from '../ledger.ts';
import { formatEquivalents, podEquivalents, withinQuota } from '../pools/equivalents.ts';
import { poolNamed, tenantNamed } from '../policy/model.ts';
import { inPool } from '../scheduling/evaluate.ts';
import type { SchedulingState } from '../scheduling/state.ts';
import { POOL_ANNOTATION, TENANT_LABEL } from '../well-known-names.ts';
import { podOfSet, type WorkloadPodSet } from './job-ask.ts';

export type CheckState = 'Ready' | 'Pending' | 'Retry' | 'Rejected';

export interface GpuFitVerdict {
  readonly state: CheckState;
  readonly message: string;
}

export interface FitSubject {
  readonly namespace: string;
  readonly podSets: readonly WorkloadPodSet[];
  /** Per pod set, the node labels Kueue will add to its pods (the assigned ResourceFlavor's nodeLabels). */
  readonly nodeSelectors?: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** Per pod set, how many of its pods are not placed yet (all of them for a workload not yet admitted). */
  readonly unplaced?: ReadonlyMap<string, number>;
}

/** The user the Job controller creates pods as: no admin, no Tessera identity. */
const JOB_CONTROLLER = 'system:serviceaccount:kube-system:job-controller';

interface PlannedPod {
  readonly pod: KubePod;
  readonly equivalents: number;
}

/** The pods of a subject after Tessera's webhook (mutated), or the webhook's denial. */
function admitted(state: SchedulingState, s: FitSubject, tenant: string): PlannedPod[] | { denial: string } {
  const policy = state.policy!;
  const view = staticClusterView([{ metadata: { name: s.namespace, labels: { [TENANT_LABEL]: tenant } } }], []);
  const out: PlannedPod[] = [];
  for (const ps of s.podSets) {
    const count = s.unplaced?.get(ps.name) ?? ps.count;
    if (count <= 0) continue;
    const pod = podOfSet(ps, s.namespace, 0, s.nodeSelectors?.get(ps.name) ?? {});
    const result = runAdmission(
      {
        uid: pod.metadata!.uid!,
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        namespace: s.namespace,
        operation: 'CREATE',
        userInfo: { username: JOB_CONTROLLER, groups: ['system:serviceaccounts'] },
        object: pod,
      },
      policy,
      view,
      { systemUsers: [] },
    );
    if (!result.response.allowed)
      return { denial: `pod set ${ps.name}: ${result.response.status?.message ?? 'denied by Tessera'}` };
    const mutated = result.object as KubePod;
    const parsed = parseDemand(mutated);
    if (!parsed.ok) return { denial: `pod set ${ps.name}: ${parsed.error.message}` };
    const equivalents = wantsGpu(parsed.demand) ? podEquivalents(parsed.demand, policy) : 0;
    for (let i = 0; i < count; i++) {
      const name = `${ps.name}-${i}`;
      const uid = `fleet-${s.namespace}-${ps.name}-${i}`;
      const meta = { ...mutated.metadata, name, uid };
      out.push({ pod: { ...mutated, metadata: meta }, equivalents });
    }
  }
  return out;
}

/** Places the pods on a what-if copy of the cluster's usage; the first pod that finds no node says why. */
function place(state: SchedulingState, tenant: string, pods: readonly PlannedPod[], usage: Map<string, NodeUsage>) {
  const policy = state.policy!;
  const usageOf = (node: string) => {
    let u = usage.get(node);
    if (!u) {
      u = state.ledger.usage(node).copy();
      usage.set(node, u);
    }
    return u;
  };
  const nodes = [...state.nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const { pod, equivalents } of pods) {
    const parsed = parseDemand(pod);
    if (!parsed.ok || !wantsGpu(parsed.demand)) continue;
    const pool = poolNamed(policy, pod.metadata?.annotations?.[POOL_ANNOTATION] ?? '');
    const selector = pod.spec?.nodeSelector ?? {};
    let why = pool ? `pool ${pool.name} has no usable node in this cluster` : 'the pod has no pool';
    let placed = false;
    for (const node of nodes) {
      if (pool && !inPool(node, pool)) continue;
      if (Object.entries(selector).some(([k, v]) => node.labels[k] !== v)) continue;
      const u = usageOf(node.name);
      const r = fit(node, u, parsed.demand, state.fitContext(tenant));
      if (!r.ok) {
        why = r.reason.message;
        continue;
      }
      const holding = r.placements[0]!;
      u.apply(newAllocation({ pod: parsed.demand, tenant, node: node.name, holding, equivalents }), 1);
      placed = true;
      break;
    }
    if (!placed) return `pod ${pod.metadata?.name} cannot be placed now: ${why}`;
  }
  return null;
}

/**
 * Decides the check for `subject`, after `ahead` (workloads already answered Ready here whose pods are not all placed
 * yet: they hold room and quota until their pods are bound and in the ledger).
 */
export function decideGpuFit(
  state: SchedulingState,
  subject: FitSubject,
  ahead: readonly FitSubject[] = [],
): GpuFitVerdict {
  const policy = state.policy;
  if (policy === null) return { state: 'Pending', message: 'Tessera has no valid policy in this cluster yet' };
  const tenantName = state.tenantOf(subject.namespace);
  if (tenantName === null)
    return {
      state: 'Pending',
      message: `namespace ${subject.namespace} has no ${TENANT_LABEL} label in this cluster, so Tessera gives its pods no GPUs; mirror the tenant namespace (with its label) onto every worker`,
    };
  const tenant = tenantNamed(policy, tenantName);
  if (!tenant)
    return {
      state: 'Rejected',
      message: `tenant ${tenantName} of namespace ${subject.namespace} is not in Tessera's policy; add it or fix the namespace label`,
    };
  const mine = admitted(state, subject, tenantName);
  if ('denial' in mine) return { state: 'Rejected', message: `Tessera would deny the job's pods: ${mine.denial}` };
  const need = mine.reduce((sum, p) => sum + p.equivalents, 0);
  const usage = new Map<string, NodeUsage>();
  let heldAhead = 0;
  for (const a of ahead) {
    const t = state.tenantOf(a.namespace);
    if (t === null) continue;
    const pods = admitted(state, a, t);
    if ('denial' in pods) continue;
    if (t === tenantName) heldAhead += pods.reduce((sum, p) => sum + p.equivalents, 0);
    place(state, t, pods, usage);
  }
  if (tenant.quotaGpus !== null) {
    if (need > tenant.quotaGpus + 1e-9)
      return {
        state: 'Rejected',
        message: `the job needs ${formatEquivalents(need)} GPU-equivalents at once, more than tenant ${tenantName}'s whole quota of ${tenant.quotaGpus}; make it smaller`,
      };
    const held = state.ledger.tenantEquivalents(tenantName) + heldAhead;
    if (!withinQuota(held, need, tenant.quotaGpus))
      return {
        state: 'Pending',
        message: `tenant ${tenantName} holds ${formatEquivalents(held)} of its ${tenant.quotaGpus} GPU-equivalents in this cluster; the job needs ${formatEquivalents(need)}`,
      };
  }
  const problem = place(state, tenantName, mine, usage);
  if (problem !== null) return { state: 'Pending', message: problem };
  return {
    state: 'Ready',
    message: `Tessera admits and can place all ${mine.length} pod(s) now (${formatEquivalents(need)} GPU-equivalents for tenant ${tenantName})`,
  };
}
