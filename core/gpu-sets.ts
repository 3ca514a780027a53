// Choosing sets of whole GPUs inside one node for multi-GPU pods. Pair scores follow go-gpuallocator's idea (links as
// data, a set scores the sum of its pairs); sets are taken island by island, tightest island first, so that a
// 2-GPU pod does not break up an NVLink island a later 4-GPU pod needs.

import type { TopologyRequirement } from './demand.ts';
import type { GpuInventory } from './inventory/node-inventory.ts';

const PAIR_NVLINK = 100;
const PAIR_SAME_NUMA = 20;
const PAIR_CROSS_NUMA = 10;

function pairScore(a: GpuInventory, b: GpuInventory): number {
  // Unknown topology is assumed fully connected (DESIGN: "else GPUs are assumed fully connected").
  if (a.nvlink === null && b.nvlink === null && a.numa === null && b.numa === null) return PAIR_NVLINK;
  if (a.nvlink !== null && a.nvlink === b.nvlink) return PAIR_NVLINK;
  if (a.numa !== null && a.numa === b.numa) return PAIR_SAME_NUMA;
  return PAIR_CROSS_NUMA;
}

/** Topology quality of a set in 0..1: 1 when every pair is NVLink-connected. */
export function setQuality(gpus: readonly GpuInventory[]): number {
  if (gpus.length < 2) return 1;
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < gpus.length; i++) {
    for (let j = i + 1; j < gpus.length; j++) {
      sum += pairScore(gpus[i]!, gpus[j]!);
      pairs++;
    }
  }
  return sum / (pairs * PAIR_NVLINK);
}

function islandKey(gpu: GpuInventory, by: 'nvlink' | 'numa'): string {
  const value = by === 'nvlink' ? gpu.nvlink : gpu.numa;
  return value === null ? '*' : String(value);
}

function islands(gpus: readonly GpuInventory[], by: 'nvlink' | 'numa'): Map<string, GpuInventory[]> {
  const map = new Map<string, GpuInventory[]>();
  for (const g of gpus) {
    const key = islandKey(g, by);
    const list = map.get(key);
    if (list) list.push(g);
    else map.set(key, [g]);
  }
  return map;
}

export interface GpuSetChoice {
  readonly sets: readonly (readonly GpuInventory[])[];
  /** When no set exists: whether it is for lack of free GPUs now (false) or by the node's shape (true). */
  readonly impossible: boolean;
}

/**
 * Candidate sets of `count` GPUs among `free`, best first. With a requirement, only sets inside one island qualify;
 * without one, every island that can hold the pod is a candidate, and a cross-island set is offered only when none can.
 */
export function chooseGpuSets(
  all: readonly GpuInventory[],
  free: readonly GpuInventory[],
  count: number,
  requirement: TopologyRequirement | null,
): GpuSetChoice {
  if (free.length < count) return { sets: [], impossible: false };
  const by: 'nvlink' | 'numa' = requirement === 'numa' ? 'numa' : 'nvlink';
  const required = requirement === 'nvlink' || requirement === 'numa';
  const freeIslands = [...islands(free, by).entries()].filter(([, g]) => g.length >= count);
  // Tightest island first: fewest free GPUs left over, then lowest first index for determinism.
  freeIslands.sort(([, a], [, b]) => a.length - b.length || a[0]!.index - b[0]!.index);
  const sets = freeIslands.map(([, g]) => g.slice(0, count));
  if (sets.length > 0 || required) {
    const impossible = sets.length === 0 && ![...islands(all, by).values()].some((g) => g.length >= count);
    return { sets, impossible };
  }
  // No single island holds the pod and nothing is required: take whole NUMA groups first, biggest first.
  const byNuma = [...islands(free, 'numa').values()].sort((a, b) => b.length - a.length || a[0]!.index - b[0]!.index);
  const picked: GpuInventory[] = [];
  for (const group of byNuma) for (const g of group) if (picked.length < count) picked.push(g);
  return { sets: [picked.sort((a, b) => a.index - b.index)], impossible: false };
}
