// GetPreferredAllocation: steer the kubelet's pick of device IDs to the assigned GPUs, so that its device accounting
// (and PodResources) names the GPUs the pod really got. The kubelet may ignore the preference (devicemanager
// manager.go devicesToAllocate: preferred ∩ available first, then any); Allocate does not depend on it.

import type { AssignedShare } from './allocation-answer.ts';
import { gpuOfDeviceId } from './device-ids.ts';

export function preferredIds(
  available: readonly string[],
  mustInclude: readonly string[],
  size: number,
  shares: readonly AssignedShare[],
): string[] {
  const chosen = new Set(mustInclude.slice(0, size));
  const want = new Map(shares.map((s) => [s.gpu.uuid, s.milli]));
  for (const id of chosen) {
    const uuid = gpuOfDeviceId(id);
    if (uuid !== null && want.has(uuid)) want.set(uuid, want.get(uuid)! - 1);
  }
  for (const id of available) {
    if (chosen.size >= size) break;
    const uuid = gpuOfDeviceId(id);
    if (uuid === null || chosen.has(id)) continue;
    const left = want.get(uuid) ?? 0;
    if (left <= 0) continue;
    chosen.add(id);
    want.set(uuid, left - 1);
  }
  return [...chosen];
}
