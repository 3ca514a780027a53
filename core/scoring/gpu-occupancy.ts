// How full a node's GPUs are, before and after a placement, in the units each node mode accounts in.

import type { Placement } from '../fit.ts';
import type { NodeInventory } from '../inventory/node-inventory.ts';
import type { NodeUsage } from '../ledger.ts';
import { NVIDIA_MIG_PREFIX } from '../well-known-names.ts';

/** Free milli per GPU of a fraction node after the placement. */
export function freeMilliAfter(node: NodeInventory, usage: NodeUsage, placement: Placement | null): number[] {
  const free = node.gpus.map((g) => 1000 - usage.milliOn(g.index));
  if (placement) for (const g of placement.gpus) free[g.index] = free[g.index]! - g.milli;
  return free;
}

/** GPU-resource capacity and use of a device-plugin node, summed over its GPU resources. */
function devicePluginTotals(
  node: NodeInventory,
  usage: NodeUsage,
  placement: Placement | null,
): { used: number; capacity: number } {
  let used = 0;
  let capacity = 0;
  for (const [resource, cap] of Object.entries(node.resources)) {
    // MIG instances weigh by compute slices so that a 7g instance counts as much as seven 1g instances.
    const weight = resource.startsWith(NVIDIA_MIG_PREFIX)
      ? Number(/^(\d+)g/.exec(resource.slice(NVIDIA_MIG_PREFIX.length))?.[1] ?? 1)
      : 1;
    capacity += weight * cap;
    used += weight * ((usage.resources.get(resource) ?? 0) + (placement?.resources[resource] ?? 0));
  }
  return { used, capacity };
}

/** Share of the node's GPU capacity in use after the placement, 0..1. */
export function gpuUtilisationAfter(node: NodeInventory, usage: NodeUsage, placement: Placement | null): number {
  if (node.mode === 'fraction') {
    if (node.gpus.length === 0) return 0;
    const free = freeMilliAfter(node, usage, placement).reduce((a, b) => a + b, 0);
    return 1 - free / (1000 * node.gpus.length);
  }
  const { used, capacity } = devicePluginTotals(node, usage, placement);
  return capacity === 0 ? 0 : used / capacity;
}

/** Free milli left on the GPU a single-GPU placement uses (1000 for device-plugin placements). */
export function gpuLeftover(usage: NodeUsage, placement: Placement): number {
  if (placement.gpus.length !== 1) return 0;
  const g = placement.gpus[0]!;
  return 1000 - usage.milliOn(g.index) - g.milli;
}
