// What a pod holds, as a ledger allocation, rebuilt from the API: the `tessera.io/assignment` annotation on fraction
// nodes, the effective requests of bound, non-terminated pods on device-plugin nodes. This is how state survives an
// extender restart: nothing is kept anywhere else.

import { podEquivalents } from '../pools/equivalents.ts';
import { parseAssignment } from '../assignment.ts';
import { parseDemand } from '../demand.ts';
import type { NodeInventory } from '../inventory/node-inventory.ts';
import type { KubePod } from '../kube-objects.ts';
import { isTerminated } from '../pod-lifecycle.ts';
import { newAllocation, type Allocation } from '../allocation.ts';
import { ASSIGNMENT, GPU_MILLI } from '../well-known-names.ts';
import type { Policy } from '../policy/model.ts';
import { vmOfPod } from '../kubevirt/launcher.ts';

export interface PodAllocation {
  /** What the pod holds; null for pods that hold nothing (unbound, finished, unreadable). */
  readonly allocation: Allocation | null;
  /** Why the pod's GPU record could not be read, if it could not. */
  readonly problem: string | null;
}

const NOTHING: PodAllocation = { allocation: null, problem: null };

/**
 * The allocation of a bound, non-terminated pod. A fraction pod whose assignment cannot be read is reported and charged
 * its CPU and memory only; the problem is surfaced (log, metric) rather than guessed around.
 */
export function allocationOfPod(
  pod: KubePod,
  node: NodeInventory | undefined,
  tenant: string | null,
  policy: Policy | null,
): PodAllocation {
  const meta = pod.metadata ?? {};
  // The assignment is the commit record. The Binding carries it, so it arrives with nodeName; a pod that has it without
  // nodeName (left by the two-step bind of earlier versions) still holds the GPUs it names, never handed out twice.
  const recorded = meta.annotations?.[ASSIGNMENT];
  const pendingNode =
    recorded === undefined
      ? undefined
      : (() => {
          const a = parseAssignment(recorded);
          return typeof a === 'string' ? undefined : a.node;
        })();
  const nodeName = pod.spec?.nodeName || pendingNode;
  if (!nodeName || isTerminated(pod)) return NOTHING;
  const parsed = parseDemand(pod, policy?.accelerators);
  if (!parsed.ok) return { allocation: null, problem: `pod ${meta.namespace}/${meta.name}: ${parsed.error.message}` };
  const demand = parsed.demand;
  const where = {
    pod: { ...demand, uid: meta.uid ?? `${meta.namespace}/${meta.name}` },
    tenant,
    node: nodeName,
    equivalents: policy === null ? 0 : podEquivalents(demand, policy),
    priority: pod.spec?.priority ?? 0,
    pool: demand.intent.pool,
    vm: vmOfPod(pod),
  };
  const who = `pod ${demand.namespace}/${demand.name}`;
  if (demand.gpuResources[GPU_MILLI] !== undefined) {
    const cpuOnly = newAllocation({ ...where, holding: { resources: {}, gpus: [], sharing: false } });
    const text = meta.annotations?.[ASSIGNMENT];
    if (text === undefined)
      return {
        allocation: cpuOnly,
        problem: `${who} runs on ${nodeName} with ${GPU_MILLI} but has no ${ASSIGNMENT}; it was not bound by Tessera`,
      };
    const assignment = parseAssignment(text);
    if (typeof assignment === 'string') return { allocation: cpuOnly, problem: `${who}: ${assignment}` };
    if (assignment.node !== nodeName)
      return {
        allocation: cpuOnly,
        problem: `${who}: assignment names node ${assignment.node} but the pod runs on ${nodeName}`,
      };
    const sharing = assignment.gpus.length === 1 && assignment.gpus[0]!.milli < 1000;
    const equivalents = policy === null ? 0 : podEquivalents(demand, policy, assignment.gpus);
    return {
      allocation: newAllocation({ ...where, equivalents, holding: { resources: {}, gpus: assignment.gpus, sharing } }),
      problem: null,
    };
  }
  const replicaNode = node !== undefined && (node.mode === 'time-slicing' || node.mode === 'mps');
  const sharing = replicaNode && Object.keys(demand.gpuResources).length > 0;
  const resources = { ...demand.gpuResources, ...demand.devices };
  return {
    allocation: newAllocation({ ...where, holding: { resources, gpus: [], sharing } }),
    problem: null,
  };
}
