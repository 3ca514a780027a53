// What the extender must find room for on a DRA node: the GPU requests of the pod's claims that are not allocated yet
// and of its DRA-backed extended resources, plus, on a node whose GPUs only DRA publishes, the device-plugin names
// NVIDIA's DeviceClasses map to DRA (nvidia.com/gpu, nvidia.com/mig-<profile>). A claim that is already allocated
// (a shared ResourceClaim in use) pins the pod to its node instead.

import type { PodDemand } from '../demand.ts';
import type { KubePod } from '../kube-objects.ts';
import type { Policy } from '../policy/model.ts';
import { NVIDIA_GPU, NVIDIA_MIG_PREFIX } from '../well-known-names.ts';
import type { RequestReading } from './claim-requests.ts';
import type { DraCluster } from './cluster.ts';
import type { DraRequestNeed } from './fit.ts';
import { readPodDra } from './pod-claims.ts';

export interface DraAsk {
  readonly requests: readonly DraRequestNeed[];
  /**
   * kube-scheduler allocated the claim it makes for the pod's DRA-backed extended resources (KEP-5004; it does so in
   * PreBind, before an extender binds): those resources hold their devices already.
   */
  readonly extendedClaimAllocated?: boolean;
  /** Claims of the pod that are allocated already, and the node their devices are on. */
  readonly allocated: readonly { readonly claim: string; readonly node: string }[];
  /** Claims the extender cannot see (not in its cache yet). */
  readonly unresolved: readonly string[];
}

function needsOf(requests: readonly RequestReading[]): DraRequestNeed[] {
  const out: DraRequestNeed[] = [];
  for (const r of requests) {
    const alternatives = r.alternatives
      .filter((a) => a.gpu && !a.all)
      .map((a) => ({ kind: a.kind, count: a.count, profile: a.profile, memoryMiB: a.memoryMiB }));
    if (alternatives.length > 0) out.push({ label: r.alternatives[0]!.label, alternatives });
  }
  return out;
}

/** The claim kube-scheduler made for the pod's DRA-backed extended resources, when it is allocated. */
function extendedClaim(pod: KubePod, cluster: DraCluster): { claim: string; node: string } | null {
  const status = pod.status as { extendedResourceClaimStatus?: { resourceClaimName?: string } | null } | undefined;
  const name = status?.extendedResourceClaimStatus?.resourceClaimName;
  if (!name) return null;
  const claim = cluster.resourceClaim(pod.metadata?.namespace ?? '', name);
  if (!claim?.status?.allocation) return null;
  const node = cluster.allocatedNode(claim);
  return node === null ? null : { claim: name, node };
}

/** The pod's DRA GPU demand, or null when it has none (claims of other devices are not Tessera's to place). */
export function draAskOf(pod: KubePod, policy: Policy, cluster: DraCluster): DraAsk | null {
  const namespace = pod.metadata?.namespace ?? '';
  const dra = readPodDra(pod, namespace, policy, cluster);
  const special = extendedClaim(pod, cluster);
  if (!dra.gpu && dra.unresolved.length === 0 && special === null) return null;
  const requests: DraRequestNeed[] = [];
  const allocated: { claim: string; node: string }[] = special ? [special] : [];
  for (const c of dra.claims) {
    if (!dra.gpuClaimNames.has(c.podClaim)) continue;
    if (c.claim?.status?.allocation) {
      const node = cluster.allocatedNode(c.claim);
      if (node !== null) allocated.push({ claim: c.objectName, node });
      continue;
    }
    requests.push(...needsOf(c.requests));
  }
  if (special === null) for (const e of dra.extended) requests.push(...needsOf([e.request]));
  return { requests, allocated, unresolved: dra.unresolved, extendedClaimAllocated: special !== null };
}

/** nvidia.com/gpu and nvidia.com/mig-<profile> as DRA needs, for a node whose GPUs only DRA publishes (KEP-5004). */
export function nativeNeeds(demand: PodDemand): DraRequestNeed[] {
  const out: DraRequestNeed[] = [];
  for (const [resource, count] of Object.entries(demand.gpuResources)) {
    if (resource === NVIDIA_GPU)
      out.push({ label: resource, alternatives: [{ kind: 'gpu', count, profile: null, memoryMiB: null }] });
    else if (resource.startsWith(NVIDIA_MIG_PREFIX))
      out.push({
        label: resource,
        alternatives: [{ kind: 'mig', count, profile: resource.slice(NVIDIA_MIG_PREFIX.length), memoryMiB: null }],
      });
  }
  return out;
}
