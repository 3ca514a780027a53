// A scoring strategy ranks the feasible placements of one pod on one node; higher is better. Strategies see only the
// node they are given (the scheduler framework's Filter/Score contract), so what-if evaluation and the simulator reuse
// them unchanged.

import type { PodDemand } from '../demand.ts';
import type { Placement } from '../fit.ts';
import type { NodeInventory } from '../inventory.ts';
import type { NodeUsage } from '../ledger.ts';
import { EMPTY_PROFILE, shapesAllowedOn, type WorkloadProfile } from './workload-profile.ts';

export interface ScoringContext {
  readonly profile: WorkloadProfile;
  /** shapesAllowedOn(profile, model), memoised per model. */
  allowedShapes(model: string | null): readonly boolean[];
}

export function scoringContext(profile: WorkloadProfile = EMPTY_PROFILE): ScoringContext {
  const cache = new Map<string, boolean[]>();
  return {
    profile,
    allowedShapes(model) {
      const key = model ?? '';
      let allowed = cache.get(key);
      if (!allowed) {
        allowed = shapesAllowedOn(profile, model);
        cache.set(key, allowed);
      }
      return allowed;
    },
  };
}

export interface ScoreInput {
  readonly node: NodeInventory;
  readonly usage: NodeUsage;
  readonly demand: PodDemand;
  /** Non-empty; as fit returned them. */
  readonly placements: readonly Placement[];
  readonly context: ScoringContext;
}

export interface Scored {
  readonly placement: Placement;
  readonly score: number;
}

export interface Strategy {
  readonly name: string;
  readonly description: string;
  choose(input: ScoreInput): Scored;
}

/** The placement with the highest score; the first one wins ties, so results follow fit's deterministic order. */
export function bestOf(placements: readonly Placement[], score: (p: Placement) => number): Scored {
  let best = placements[0]!;
  let bestScore = score(best);
  for (let i = 1; i < placements.length; i++) {
    const s = score(placements[i]!);
    if (s > bestScore) {
      best = placements[i]!;
      bestScore = s;
    }
  }
  return { placement: best, score: bestScore };
}
