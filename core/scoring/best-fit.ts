// Best fit: the node left with the least spare CPU and GPU after the placement (both as shares of the node), and the
// GPU with the least spare compute. This is the strongest classic baseline in the FGD paper.

import { gpuLeftover, gpuUtilisationAfter } from './gpu-occupancy.ts';
import { bestOf, type Strategy } from './strategy.ts';

export const bestFit: Strategy = {
  name: 'best-fit',
  description: 'least CPU and GPU left over on the node, tightest GPU',
  choose({ node, usage, demand, placements }) {
    const chosen = bestOf(placements, (p) => p.topology - gpuLeftover(usage, p) / 1000);
    const cpuLeft = node.cpuMilli === 0 ? 0 : (node.cpuMilli - usage.cpuMilli - demand.cpuMilli) / node.cpuMilli;
    const gpuLeft = 1 - gpuUtilisationAfter(node, usage, chosen.placement);
    return { placement: chosen.placement, score: -(0.5 * cpuLeft + 0.5 * gpuLeft) + chosen.placement.topology * 1e-3 };
  },
};
