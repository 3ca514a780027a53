// Binpack: fill the fullest node first and the fullest GPU on it, keeping empty nodes free for large pods.

import { gpuLeftover, gpuUtilisationAfter } from './gpu-occupancy.ts';
import { bestOf, type Strategy } from './strategy.ts';

export const binpack: Strategy = {
  name: 'binpack',
  description: 'fullest node first, tightest GPU on it',
  choose({ node, usage, placements }) {
    const chosen = bestOf(placements, (p) => p.topology - gpuLeftover(usage, p) / 1000);
    return {
      placement: chosen.placement,
      score: gpuUtilisationAfter(node, usage, chosen.placement) + chosen.placement.topology * 1e-3,
    };
  },
};
