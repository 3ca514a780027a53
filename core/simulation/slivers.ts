// Where the free GPU capacity of a fraction-node cluster sits: on nodes whose CPU or memory no GPU pod of the workload
// fits any more (stranded), on untouched GPUs, or in partial slivers, bucketed by 100 milli. At 100 % arrived load the
// free capacity is exactly what failed pods left unallocated, so this says which packing mistakes cost it.

import type { NodeInventory } from '../inventory/node-inventory.ts';
import type { NodeUsage } from '../ledger.ts';
import type { WorkloadProfile } from '../scoring/workload-profile.ts';

export const SLIVER_BUCKET = 100;
export const SLIVER_BUCKETS = 1000 / SLIVER_BUCKET;

export interface SliverDecomposition {
  readonly capacityMilli: number;
  /** Free milli on nodes where no GPU shape of the profile fits the free CPU and memory. */
  readonly strandedMilli: number;
  readonly strandedGpus: number;
  /** Untouched GPUs on the other nodes. */
  readonly wholeGpus: number;
  /** Per bucket b (free milli in [100b, 100b + 99]): partially used GPUs on the other nodes and their free milli. */
  readonly sliverGpus: readonly number[];
  readonly sliverMilli: readonly number[];
}

/** The decomposition of the free GPU capacity of `nodes` (fraction nodes only), given each node's usage. */
export function sliverDecomposition(
  nodes: readonly NodeInventory[],
  usages: readonly NodeUsage[],
  profile: WorkloadProfile,
): SliverDecomposition {
  const gpuShapes = profile.shapes.filter((s) => s.gpus > 0);
  let capacityMilli = 0;
  let strandedMilli = 0;
  let strandedGpus = 0;
  let wholeGpus = 0;
  const sliverGpus = new Array<number>(SLIVER_BUCKETS).fill(0);
  const sliverMilli = new Array<number>(SLIVER_BUCKETS).fill(0);
  nodes.forEach((node, i) => {
    if (node.mode !== 'fraction') return;
    const usage = usages[i]!;
    const cpuFree = node.cpuMilli - usage.cpuMilli;
    const memoryFree = node.memoryMiB - usage.memoryMiB;
    const stranded = !gpuShapes.some((s) => s.cpuMilli <= cpuFree && s.memoryMiB <= memoryFree);
    for (const g of node.gpus) {
      capacityMilli += 1000;
      const free = 1000 - usage.milliOn(g.index);
      if (free <= 0) continue;
      if (stranded) {
        strandedMilli += free;
        strandedGpus++;
      } else if (free >= 1000) wholeGpus++;
      else {
        const b = Math.floor(free / SLIVER_BUCKET);
        sliverGpus[b]!++;
        sliverMilli[b]! += free;
      }
    }
  });
  return { capacityMilli, strandedMilli, strandedGpus, wholeGpus, sliverGpus, sliverMilli };
}

/** The per-bucket mean of several decompositions (one per seed). */
export function meanDecomposition(runs: readonly SliverDecomposition[]): SliverDecomposition {
  const n = Math.max(1, runs.length);
  const mean = (f: (d: SliverDecomposition) => number) => runs.reduce((a, d) => a + f(d), 0) / n;
  return {
    capacityMilli: mean((d) => d.capacityMilli),
    strandedMilli: mean((d) => d.strandedMilli),
    strandedGpus: mean((d) => d.strandedGpus),
    wholeGpus: mean((d) => d.wholeGpus),
    sliverGpus: Array.from({ length: SLIVER_BUCKETS }, (_, b) => mean((d) => d.sliverGpus[b]!)),
    sliverMilli: Array.from({ length: SLIVER_BUCKETS }, (_, b) => mean((d) => d.sliverMilli[b]!)),
  };
}
