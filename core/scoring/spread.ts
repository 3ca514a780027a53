// Spread: the emptiest node and the emptiest GPU on it, for the least interference between tenants' pods.

import { gpuLeftover, gpuUtilisationAfter } from './gpu-occupancy.ts';
import { bestOf, type Strategy } from './strategy.ts';

export const spread: Strategy = {
  name: 'spread',
  description: 'emptiest node first, emptiest GPU on it',
  choose({ node, usage, placements }) {
    const chosen = bestOf(placements, (p) => p.topology + gpuLeftover(usage, p) / 1000);
    return {
      placement: chosen.placement,
      score: 1 - gpuUtilisationAfter(node, usage, chosen.placement) + chosen.placement.topology * 1e-3,
    };
  },
};
