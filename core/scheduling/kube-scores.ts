// Whether kube-scheduler's own score plugins could tell the candidate nodes apart for a pod. When they cannot, the
// extender's ranking alone decides where the pod goes, and filter may answer only the best node: kube-scheduler then
// skips scoring altogether (one feasible node is taken as it is) and never calls prioritize. The score plugins of
// the shipped profile (manifests/base/scheduler.yaml turns off the two resource scores) and what makes each of them
// differ between nodes (k8s.io/kubernetes v1.37.2, pkg/scheduler/framework/plugins):
// - NodeAffinity: the pod's preferred node affinity terms;
// - InterPodAffinity: the pod's preferred pod affinity and anti-affinity terms;
// - PodTopologySpread: constraints with whenUnsatisfiable ScheduleAnyway, and the system default constraints
//   (ScheduleAnyway by hostname and zone) for a pod without constraints that a ReplicaSet, ReplicationController or
//   StatefulSet owns;
// - TaintToleration: PreferNoSchedule taints the pod does not tolerate;
// - DynamicResources and VolumeBinding: claims and volumes (left to kube-scheduler whenever the pod has any).
// Not seen from here: ImageLocality (the images already on a node), other pods' affinity terms that select this pod,
// and default spreading through a Service alone; for pods without preferences of their own those stop breaking ties
// between nodes that Tessera ranks equally.

import { tolerates } from '../admission/pod-edits.ts';
import type { NodeInventory } from '../inventory/node-inventory.ts';
import type { KubePod } from '../kube-objects.ts';

const DEFAULT_SPREAD_OWNERS = new Set(['ReplicaSet', 'ReplicationController', 'StatefulSet']);

const nonEmpty = (v: unknown): boolean => Array.isArray(v) && v.length > 0;

/** What in the pod (or on the nodes) kube-scheduler would score, or null when its scores are the same on every node. */
export function kubeSchedulerPreference(pod: KubePod, nodes: readonly NodeInventory[]): string | null {
  const spec = pod.spec ?? {};
  const affinity = (spec.affinity ?? {}) as Record<string, Record<string, unknown> | undefined>;
  if (nonEmpty(affinity.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution))
    return 'preferred node affinity';
  if (
    nonEmpty(affinity.podAffinity?.preferredDuringSchedulingIgnoredDuringExecution) ||
    nonEmpty(affinity.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution)
  )
    return 'preferred pod affinity';
  const spread = (spec as { topologySpreadConstraints?: { whenUnsatisfiable?: string }[] | null })
    .topologySpreadConstraints;
  if (spread?.some((c) => c.whenUnsatisfiable === 'ScheduleAnyway')) return 'topology spread (ScheduleAnyway)';
  if (!nonEmpty(spread) && pod.metadata?.ownerReferences?.some((o) => DEFAULT_SPREAD_OWNERS.has(o.kind ?? '')))
    return 'default topology spread';
  if (nonEmpty(spec.resourceClaims)) return 'resource claims';
  if (spec.volumes?.some((v) => v.persistentVolumeClaim !== undefined || v.ephemeral !== undefined))
    return 'persistent volumes';
  const tolerations = spec.tolerations ?? [];
  for (const node of nodes)
    for (const taint of node.taints)
      if (taint.effect === 'PreferNoSchedule' && !tolerations.some((t) => tolerates(t, taint)))
        return `PreferNoSchedule taint ${taint.key} on node ${node.name}`;
  return null;
}
