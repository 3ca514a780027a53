// Which pod an Allocate call is for. The kubelet's AllocateRequest carries only device IDs, no pod. What makes the
// answer exact is read in the kubelet source (k8s.io/kubernetes v1.37.2; docs/node-agent.md has the proof):
// - pods are admitted one at a time: HandlePodAdditions (pkg/kubelet/kubelet.go) adds a pod to the pod manager, then
//   admits it through allocationManager.AddPod, which holds allocationMutex (pkg/kubelet/allocation/
//   allocation_manager.go); the device manager's Allocate runs inside that admission;
// - the device manager records a container's devices (podDevices.insert) only after the plugin's Allocate returned
//   (pkg/kubelet/cm/devicemanager/manager.go allocateContainerResources), and makes that RPC outside its mutex;
// - PodResources List (pkg/kubelet/apis/podresources/server_v1.go) lists the kubelet's active pods, which include a pod
//   being admitted (it is in the pod manager and not terminal), with each container's recorded devices.
// So while Allocate runs, the pod being admitted is the one pod whose container asks for gpu-milli and has no
// gpu-milli devices recorded; every pod admitted before it has them. Pods the kubelet has not reached yet are not in
// its pod manager. The rule below only ever answers with that one pod, and refuses when it is not unique.

import type { KubeContainer, KubePod } from '../kube-objects.ts';
import { parseQuantity } from '../quantity.ts';
import { GPU_MILLI } from '../well-known-names.ts';

/** One pod of a PodResources List answer, reduced to what identification needs. */
export interface ListedPod {
  readonly namespace: string;
  readonly name: string;
  /** Containers the kubelet lists (app containers and sidecars), with how many devices of the resource each holds. */
  readonly containers: readonly { readonly name: string; readonly devices: number }[];
}

export interface AdmittingPod {
  readonly pod: KubePod;
  readonly container: string;
}

export type Identification =
  | { readonly ok: true; readonly found: AdmittingPod }
  | { readonly ok: false; readonly message: string };

function milliLimit(c: KubeContainer): number {
  const raw = c.resources?.limits?.[GPU_MILLI] ?? c.resources?.requests?.[GPU_MILLI];
  if (raw === undefined) return 0;
  try {
    return parseQuantity(raw);
  } catch {
    return 0;
  }
}

const key = (namespace: string, name: string) => `${namespace}/${name}`;

/**
 * The pod (and container) the kubelet is admitting, for an Allocate of `requested` gpu-milli device IDs. `listed` is
 * PodResources List filtered to the gpu-milli resource; `specOf` gives the API's pod (undefined when it is gone).
 */
export function identifyAdmittingPod(
  listed: readonly ListedPod[],
  specOf: (namespace: string, name: string) => KubePod | undefined,
  requested: number,
): Identification {
  const candidates: AdmittingPod[] = [];
  const gone: string[] = [];
  for (const entry of listed) {
    const pod = specOf(entry.namespace, entry.name);
    const spec = pod?.spec;
    if (!pod || !spec) {
      gone.push(key(entry.namespace, entry.name));
      continue;
    }
    // A pod the API reports running or finished was admitted long ago: never the one being admitted now.
    const phase = pod.status?.phase;
    if (phase !== undefined && phase !== 'Pending') continue;
    const held = new Map(entry.containers.map((c) => [c.name, c.devices]));
    const anyHeld = entry.containers.some((c) => c.devices > 0);
    const waiting: string[] = [];
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
      if (milliLimit(c) !== requested) continue;
      // Regular init containers are not listed by PodResources: they wait while no container of the pod holds devices.
      const devices = held.get(c.name);
      if (devices === undefined ? !anyHeld : devices === 0) waiting.push(c.name);
    }
    if (waiting.length > 0) candidates.push({ pod, container: waiting[0]! });
  }
  if (candidates.length === 1) return { ok: true, found: candidates[0]! };
  if (candidates.length === 0) {
    const deleted = gone.length > 0 ? `; pods the kubelet lists but the API no longer has: ${gone.join(', ')}` : '';
    return {
      ok: false,
      message: `no pod on this node waits for ${requested} ${GPU_MILLI} (every pod the kubelet lists either holds its devices or asks for another amount)${deleted}. The pod may have been deleted before it started; if it still exists, recreate it`,
    };
  }
  const names = candidates.map((c) => key(c.pod.metadata?.namespace ?? '', c.pod.metadata?.name ?? '')).join(', ');
  return {
    ok: false,
    message: `${candidates.length} pods on this node wait for ${requested} ${GPU_MILLI} without devices (${names}); the agent cannot tell which one the kubelet is admitting and refuses to guess. Pods admitted before the agent was installed cause this: drain the node once`,
  };
}
