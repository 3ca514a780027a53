// What Allocate answers for the pod it identified: the GPUs its `tessera.io/assignment` names, checked against the
// node and the request, in the node's delivery mode, with the node's enforcement. It refuses rather than guesses.

import { parseAssignment, type Assignment } from '../assignment.ts';
import { effectiveRequest } from '../demand.ts';
import type { KubePod } from '../kube-objects.ts';
import { parseQuantity } from '../quantity.ts';
import { ASSIGNMENT, GPU_MILLI, POLICY_REVISION } from '../well-known-names.ts';
import type { DeliveryMode, EnforcementKind } from './delivery.ts';
import { MILLI_PER_GPU } from './device-ids.ts';
import { enforcementEdits, type EnforcementPaths } from './enforcement.ts';
import type { NodeGpu } from './node-gpus.ts';

export interface AssignedShare {
  readonly gpu: NodeGpu;
  readonly milli: number;
  readonly memoryMiB: number;
}

export interface AssignmentCheck {
  readonly node: string;
  readonly gpus: readonly NodeGpu[];
  readonly unhealthy: ReadonlySet<string>;
  /** Scheduler names whose binds carry Tessera's assignment. */
  readonly schedulerNames: readonly string[];
  /** Assignments of the other live pods on this node (for the no-oversubscription check), by "namespace/name". */
  readonly others: ReadonlyMap<string, Assignment>;
}

export type SharesResult =
  | { readonly ok: true; readonly shares: readonly AssignedShare[] }
  | { readonly ok: false; readonly message: string; readonly conflicts?: readonly string[] };

function who(pod: KubePod): string {
  return `pod ${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;
}

/** The assigned shares of `pod` on this node, or why they cannot be handed out. */
export function assignedShares(pod: KubePod, check: AssignmentCheck): SharesResult {
  const refuse = (message: string): SharesResult => ({ ok: false, message: `${who(pod)}: ${message}` });
  const annotations = pod.metadata?.annotations ?? {};
  const schedulerName = pod.spec?.schedulerName ?? 'default-scheduler';
  const text = annotations[ASSIGNMENT];
  if (text === undefined)
    return refuse(
      `has no ${ASSIGNMENT}, so Tessera's extender did not bind it (schedulerName ${schedulerName}). Fraction pods must be scheduled by ${check.schedulerNames.join(' or ')}; recreate the pod through the webhook`,
    );
  if (!check.schedulerNames.includes(schedulerName))
    return refuse(
      `carries ${ASSIGNMENT} but was scheduled by ${schedulerName}, not by ${check.schedulerNames.join(' or ')}: the assignment was not written by Tessera. Recreate the pod without it`,
    );
  if (annotations[POLICY_REVISION] === undefined)
    return refuse(
      `carries ${ASSIGNMENT} but no ${POLICY_REVISION}: Tessera's webhook never admitted it, so the assignment was not written by Tessera. Recreate the pod in a namespace the webhook serves`,
    );
  const parsed = parseAssignment(text);
  if (typeof parsed === 'string') return refuse(`${parsed}; recreate the pod so that the extender binds it again`);
  if (parsed.node !== check.node)
    return refuse(
      `${ASSIGNMENT} is for node ${parsed.node}, not ${check.node}; recreate the pod so that the extender binds it again`,
    );
  if (parsed.gpus.length === 0) return refuse(`${ASSIGNMENT} lists no GPU`);
  let podMilli: number;
  try {
    podMilli = effectiveRequest(pod, GPU_MILLI, parseQuantity);
  } catch {
    return refuse(`its ${GPU_MILLI} request is not a number`);
  }
  const assignedMilli = parsed.gpus.reduce((sum, g) => sum + g.milli, 0);
  if (assignedMilli !== podMilli)
    return refuse(
      `${ASSIGNMENT} reserves ${assignedMilli} ${GPU_MILLI} but the pod requests ${podMilli}; the assignment does not belong to this request. Recreate the pod`,
    );
  const shares: AssignedShare[] = [];
  for (const share of [...parsed.gpus].sort((a, b) => a.index - b.index)) {
    const gpu = check.gpus.find((g) => g.index === share.index);
    if (!gpu)
      return refuse(
        `${ASSIGNMENT} names GPU ${share.index}, but this node has ${check.gpus.length} GPU(s) (indices 0-${check.gpus.length - 1}); the node's GPUs changed after the bind`,
      );
    if (check.unhealthy.has(gpu.uuid))
      return refuse(
        `its assigned GPU ${share.index} (${gpu.uuid}) is unhealthy or gone from the driver; the pod cannot start on it`,
      );
    shares.push({ gpu, milli: share.milli, memoryMiB: share.memoryMiB });
  }
  // No GPU handed out beyond 1000 milli: a forged or stale assignment that overlaps live pods is refused.
  for (const share of shares) {
    let total = share.milli;
    const holders: string[] = [];
    for (const [other, a] of check.others) {
      const g = a.gpus.find((x) => x.index === share.gpu.index);
      if (g) {
        total += g.milli;
        holders.push(other);
      }
    }
    if (total > MILLI_PER_GPU)
      return {
        ok: false,
        message: `${who(pod)}: GPU ${share.gpu.index} would hold ${total} milli with ${holders.join(', ')}; the assignment overlaps pods already on it and was not written by Tessera's extender (or is stale)`,
        conflicts: holders,
      };
  }
  return { ok: true, shares };
}

export interface ContainerAnswer {
  readonly envs: Record<string, string>;
  readonly mounts: readonly { containerPath: string; hostPath: string; readOnly: boolean }[];
  readonly cdiDevices: readonly string[];
}

export interface AnswerOptions {
  readonly mode: DeliveryMode;
  /** CDI kind of the spec that names GPUs by UUID, e.g. nvidia.com/gpu or tessera.io/gpu. */
  readonly cdiKind: string;
  readonly enforcement: EnforcementKind;
  readonly paths: EnforcementPaths;
}

export const DEVICE_LIST_MOUNT_ROOT = '/var/run/nvidia-container-devices';
export const DELIVERY_ENV = 'TESSERA_GPU_DELIVERY';

/** The container's part of the Allocate answer. */
export function containerAnswer(shares: readonly AssignedShare[], options: AnswerOptions): ContainerAnswer {
  const uuids = shares.map((s) => s.gpu.uuid);
  const edits = enforcementEdits(options.enforcement, shares, options.paths);
  // Tells the container (and the smoke-test Job) that the node agent delivered its GPUs, and how.
  const envs: Record<string, string> = { ...edits.envs, [DELIVERY_ENV]: options.mode };
  const mounts = [...edits.mounts];
  let cdiDevices: string[] = [];
  switch (options.mode) {
    case 'cdi-cri':
      cdiDevices = uuids.map((u) => `${options.cdiKind}=${u}`);
      // CUDA base images set NVIDIA_VISIBLE_DEVICES=all; should an nvidia runtime still run the container, it must not
      // add every GPU. A CDI spec that sets the variable itself overrides this (the runtime applies CDI edits last).
      envs.NVIDIA_VISIBLE_DEVICES = 'void';
      break;
    case 'envvar':
      envs.NVIDIA_VISIBLE_DEVICES = uuids.join(',');
      break;
    case 'volume-mounts':
      envs.NVIDIA_VISIBLE_DEVICES = DEVICE_LIST_MOUNT_ROOT;
      for (const u of uuids)
        mounts.push({ containerPath: `${DEVICE_LIST_MOUNT_ROOT}/${u}`, hostPath: '/dev/null', readOnly: true });
      break;
  }
  return { envs, mounts, cdiDevices };
}
