// Fragmentation gradient descent (FGD, Weng et al., USENIX ATC '23): place the pod where it grows the node's
// fragmentation least, measured against the workload's typical pods. `fgd` reproduces the paper's scorer, including its
// integer score ⌊100·sigmoid(−ΔF/1000)⌋ whose ties fall back to node order; device-plugin nodes, where the kubelet picks
// the device, are ranked by binpack.

import type { Placement } from '../fit.ts';
import { nodeFragmentation } from './fragmentation.ts';
import { freeMilliAfter, gpuUtilisationAfter } from './gpu-occupancy.ts';
import type { ScoreInput, Strategy } from './strategy.ts';

/** Fragmentation growth (milli) of each placement on a fraction node, in placement order. */
export function fragmentationDeltas({ node, usage, demand, placements, context }: ScoreInput): number[] {
  const allowed = context.allowedShapes(node.model);
  const free = freeMilliAfter(node, usage, null);
  const cpuFree = node.cpuMilli - usage.cpuMilli;
  const memoryFree = node.memoryMiB - usage.memoryMiB;
  const before = nodeFragmentation(context.profile, allowed, free, cpuFree, memoryFree);
  return placements.map((p: Placement) => {
    for (const g of p.gpus) free[g.index] = free[g.index]! - g.milli;
    const after = nodeFragmentation(
      context.profile,
      allowed,
      free,
      cpuFree - demand.cpuMilli,
      memoryFree - demand.memoryMiB,
    );
    for (const g of p.gpus) free[g.index] = free[g.index]! + g.milli;
    return after - before;
  });
}

export function argmin(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! < values[best]!) best = i;
  return best;
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

export const fgd: Strategy = {
  name: 'fgd',
  description: 'FGD as published: least fragmentation growth, integer-quantised score',
  choose(input) {
    const { node, usage, placements } = input;
    if (node.mode !== 'fraction')
      return { placement: placements[0]!, score: Math.floor(100 * gpuUtilisationAfter(node, usage, placements[0]!)) };
    const deltas = fragmentationDeltas(input);
    const i = argmin(deltas);
    return { placement: placements[i]!, score: Math.floor(100 * sigmoid(-deltas[i]! / 1000)) };
  },
};
