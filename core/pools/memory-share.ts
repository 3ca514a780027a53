// A memory-only ask (tessera.io/gpu-memory without a fraction) is a share whose memory binds: on a GPU of M MiB it
// reserves its memory and ceil(memory / M * 1000) milli of compute (DESIGN: "a memory request alone reserves that
// memory and the matching share of compute"). The share depends on the GPU model, so before placement it is a range
// over the models the pod may land on: the pool's model, else the models the pod allows, else every catalogued model.

import { knownModels, lookupModel, type GpuModel } from '../catalog/gpu-models.ts';
import type { Pool } from '../policy/model.ts';

/** Milli of compute a memory-only share takes on a GPU with `gpuMemoryMiB`, never below `floorMilli`. */
export function memoryShareMilli(memoryMiB: number, gpuMemoryMiB: number, floorMilli = 0): number {
  return Math.min(1000, Math.max(floorMilli, Math.ceil((memoryMiB * 1000) / gpuMemoryMiB)));
}

export interface MemoryShareRange {
  /** The share on the roomiest candidate model: what the pod takes at least (minFraction judges this). */
  readonly least: { readonly milli: number; readonly model: GpuModel };
  /** The share on the smallest candidate model that holds it: what the pod may take (quota reserves this). */
  readonly most: { readonly milli: number; readonly model: GpuModel };
}

/** The GPU models a pod in `pool` may be placed on, as far as the policy and the pod say. */
export function candidateModels(pool: Pool, allowed: readonly string[] | null): readonly GpuModel[] {
  if (pool.gpuModel !== null) {
    const model = lookupModel(pool.gpuModel);
    return model ? [model] : [];
  }
  if (allowed !== null) return allowed.map(lookupModel).filter((m): m is GpuModel => m !== null);
  return knownModels();
}

/** The range of the share over the candidate models that can hold the memory, or null when none can. */
export function memoryShareRange(
  models: readonly GpuModel[],
  memoryMiB: number,
  floorMilli = 0,
): MemoryShareRange | null {
  const holding = models.filter((m) => m.memoryMiB >= memoryMiB);
  if (holding.length === 0) return null;
  const roomiest = holding.reduce((a, b) => (b.memoryMiB > a.memoryMiB ? b : a));
  const smallest = holding.reduce((a, b) => (b.memoryMiB < a.memoryMiB ? b : a));
  return {
    least: { milli: memoryShareMilli(memoryMiB, roomiest.memoryMiB, floorMilli), model: roomiest },
    most: { milli: memoryShareMilli(memoryMiB, smallest.memoryMiB, floorMilli), model: smallest },
  };
}
