// Pods that a vCluster syncer (single-namespace mode) writes into its host namespace. The tenant of such a pod is the
// host namespace's tessera.io/tenant label, as for any pod: nothing here reads identity from the pod. This module
// recognises synced pods only to explain denials in vCluster's terms, and to keep Tessera's mutations compatible with
// the syncer's later writes. Sources: loft-sh/vcluster at 48766754 (v0.37.0-rc.1), cited per rule below.

import type { KubeContainer, KubePod } from '../kube-objects.ts';
import { parseQuantity } from '../quantity.ts';

/**
 * The marker label every synced host object carries (pkg/util/translate/types.go MarkerLabel), set to the vCluster's
 * name by labels.go HostLabelsMap. A tenant's own label of that key is moved aside to vcluster.loft.sh/label-<vc>-x-…
 * (single_namespace.go LabelsToTranslate), so a synced pod always names its real vCluster. A pod outside vCluster that
 * sets the label only opts into the stricter rules below.
 */
export const VCLUSTER_MARKER_LABEL = 'vcluster.loft.sh/managed-by';

/** The vCluster that synced the pod, or null for a pod created on the host. */
export function vclusterOf(pod: KubePod): string | null {
  return pod.metadata?.labels?.[VCLUSTER_MARKER_LABEL] || null;
}

/**
 * With vCluster's virtual scheduler on, the syncer creates the host pod only once the virtual scheduler has set
 * spec.nodeName (pkg/controllers/resources/pods/syncer.go SyncToHost, IsSchedulerFromVirtualCluster), so the host's
 * scheduler and Tessera's extender never see it. The virtual scheduler is controlPlane.distro.k8s.scheduler.enabled
 * (the deprecated controlPlane.advanced.virtualScheduler.enabled, config/config.go IsVirtualSchedulerEnabled); Pro's
 * hybrid scheduling sends pods whose schedulerName is in sync.toHost.pods.hybridScheduling.hostSchedulers to the host.
 */
export function virtualSchedulerDenial(vcluster: string, nodeName: string, schedulerName: string): string {
  return (
    `spec.nodeName=${nodeName} was set inside vCluster ${vcluster} (its virtual scheduler placed the pod before the ` +
    `host saw it), which bypasses ${schedulerName} and Tessera's GPU accounting. Let the host schedule this ` +
    `vCluster's GPU pods: in its vcluster.yaml set controlPlane.distro.k8s.scheduler.enabled: false (and ` +
    `controlPlane.advanced.virtualScheduler.enabled: false), or with vCluster Pro's hybrid scheduling set ` +
    `sync.toHost.pods.hybridScheduling.hostSchedulers: [${schedulerName}] and give GPU pods schedulerName ` +
    `${schedulerName} or none`
  );
}

function sameQuantity(a: string | number, b: string | number): boolean {
  if (String(a) === String(b)) return true;
  try {
    return parseQuantity(a) === parseQuantity(b);
  } catch {
    return false;
  }
}

function resourcesOf(c: KubeContainer | undefined): Record<string, Record<string, string | number>> {
  return { limits: { ...(c?.resources?.limits ?? {}) }, requests: { ...(c?.resources?.requests ?? {}) } };
}

/**
 * The resource entries of `input`'s app containers that `mutated` removes or changes, as "container main: limits
 * nvidia.com/gpu 1 → removed". On hosts at Kubernetes 1.35 or later the syncer compares each host container's resources
 * with the virtual container's on every sync and, when they differ, PATCHes pods/<name>/resize with the virtual
 * container's resources as a strategic merge patch (pkg/controllers/resources/pods/syncer.go
 * resizeHostPodContainerResourcesInPlace, buildHostPodContainersResourcesResizePatch; init containers are not
 * resized). A strategic merge of resource maps keeps keys the patch does not name, so a key Tessera adds survives
 * (the merged result equals the host's and the API server accepts it); a key Tessera removes or changes is put back,
 * and the API server refuses to resize anything but cpu and memory, so every sync would fail again.
 */
export function resizeConflicts(input: KubePod, mutated: KubePod): string[] {
  const out: string[] = [];
  const after = new Map((mutated.spec?.containers ?? []).map((c) => [c.name, c]));
  for (const c of input.spec?.containers ?? []) {
    const before = resourcesOf(c);
    const now = resourcesOf(after.get(c.name));
    for (const list of ['limits', 'requests'] as const) {
      for (const [key, value] of Object.entries(before[list] ?? {})) {
        const next = now[list]?.[key];
        if (next === undefined) out.push(`container ${c.name}: ${list} ${key} ${value} → removed`);
        else if (!sameQuantity(value, next)) out.push(`container ${c.name}: ${list} ${key} ${value} → ${next}`);
      }
    }
  }
  return out;
}

/** The denial for a synced pod whose GPU plan would rewrite resources the syncer keeps resizing back. */
export function resizeConflictDenial(
  vcluster: string,
  pool: string,
  conflicts: readonly string[],
  planLimits: Readonly<Record<string, string>>,
): string {
  const plan = Object.entries(planLimits)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  return (
    `this pod is synced from vCluster ${vcluster}, whose syncer resizes the host pod's containers back to the virtual ` +
    `pod's resources (pods/resize) on every sync, and the API server refuses to resize anything but cpu and memory. ` +
    `Tessera would have to rewrite the GPU request for pool ${pool} (${conflicts.join('; ')}), so the pod would never ` +
    `sync cleanly. In the virtual cluster, ask for the pool's own resource (limits ${plan}), or for a share of a GPU ` +
    `with the tessera.io/gpu-fraction annotation and no GPU resource`
  );
}
