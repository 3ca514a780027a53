// A scoring strategy ranks the feasible placements of one pod on one node; higher is better. Strategies see only the
// node they are given (the scheduler framework's Filter/Score contract), so what-if evaluation and the simulator reuse
// them unchanged.

import type { PodDemand } from '../demand.ts';
import type { Placement } from '../fit.ts';
import type { NodeInventory } from '../inventory/node-inventory.ts';
import type { NodeUsage } from '../ledger.ts';
import { modelMatches } from '../catalog/gpu-models.ts';
import { sliverWaste } from './sliver-waste.ts';
import { EMPTY_PROFILE, shapesAllowedOn, type WorkloadProfile } from './workload-profile.ts';

export interface ScoringContext {
  readonly profile: WorkloadProfile;
  /** shapesAllowedOn(profile, model), memoised per model. */
  allowedShapes(model: string | null): readonly boolean[];
  /**
   * The share of a model's GPU capacity that pods restricted to a set of models including it are expected to ask for
   * (0 when nothing is known): how much an unconstrained pod placed there takes from pods that have nowhere else to go.
   */
  modelPressure(model: string | null): number;
  /** sliverWaste(profile): per free milli 0..1000, the least a GPU can be left with by the workload's shares. */
  readonly sliverWaste: Float64Array;
}

/**
 * Expected demand of each model-restricted typical shape, spread over the models it allows in proportion to their
 * capacity, over each model's capacity. The workload is taken to fill the cluster (arrivals reach capacity).
 */
export function modelPressures(
  profile: WorkloadProfile,
  capacityByModel: ReadonlyMap<string, number>,
): Map<string, number> {
  const pressures = new Map<string, number>();
  const totalCapacity = [...capacityByModel.values()].reduce((a, b) => a + b, 0);
  const totalDemand = profile.shapes.reduce((a, s) => a + s.weight * s.gpus * s.milliPerGpu, 0);
  if (totalCapacity === 0 || totalDemand === 0) return pressures;
  for (const s of profile.shapes) {
    if (s.models === null || s.gpus === 0) continue;
    const allowed = [...capacityByModel.entries()].filter(([model]) => s.models!.some((m) => modelMatches(model, m)));
    const allowedCapacity = allowed.reduce((a, [, c]) => a + c, 0);
    if (allowedCapacity === 0) continue;
    const share = ((s.weight * s.gpus * s.milliPerGpu) / totalDemand) * (totalCapacity / allowedCapacity);
    for (const [model] of allowed) pressures.set(model, (pressures.get(model) ?? 0) + share);
  }
  return pressures;
}

export function scoringContext(
  profile: WorkloadProfile = EMPTY_PROFILE,
  capacityByModel: ReadonlyMap<string, number> = new Map(),
): ScoringContext {
  const cache = new Map<string, boolean[]>();
  const pressures = modelPressures(profile, capacityByModel);
  return {
    profile,
    sliverWaste: sliverWaste(profile),
    modelPressure: (model) => (model === null ? 0 : (pressures.get(model) ?? 0)),
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
