// Tessera's default strategy: fragmentation-aware packing. It keeps FGD's insight (measure free GPU capacity against
// the pods the cluster actually runs) but scores in full precision instead of FGD's 100-step integer score, and breaks
// near-ties by packing (fullest GPU, then fullest node), which is where FGD falls back to an arbitrary node order.
// Multi-GPU sets prefer NVLink-connected GPUs. Device-plugin nodes, where the kubelet picks the device, are binpacked.

import { fragmentationDeltas } from './fgd.ts';
import { gpuLeftover, gpuUtilisationAfter } from './gpu-occupancy.ts';
import type { Strategy } from './strategy.ts';

export const tessera: Strategy = {
  name: 'tessera',
  description: 'fragmentation-aware packing (FGD in full precision, packing tie-breaks, topology-aware)',
  choose(input) {
    const { node, usage, placements } = input;
    if (node.mode !== 'fraction') {
      return { placement: placements[0]!, score: gpuUtilisationAfter(node, usage, placements[0]!) };
    }
    const deltas = fragmentationDeltas(input);
    let best = 0;
    let bestScore = -Infinity;
    for (let i = 0; i < placements.length; i++) {
      const p = placements[i]!;
      // Fragmentation in GPUs (1000 milli), then topology, then the tightest GPU.
      const score = -deltas[i]! / 1000 + 0.5 * p.topology - 1e-4 * (gpuLeftover(usage, p) / 1000);
      if (score > bestScore) {
        best = i;
        bestScore = score;
      }
    }
    const placement = placements[best]!;
    return { placement, score: bestScore + 1e-3 * gpuUtilisationAfter(node, usage, placement) };
  },
};
