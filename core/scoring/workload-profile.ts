// The "typical pods" of a workload (FGD, Weng et al., USENIX ATC '23): the most frequent pod shapes covering a share of
// all pods, with their frequencies. Fragmentation is measured against them: free GPU capacity that no typical pod can
// use is fragmented.

import { modelMatches } from '../catalog/gpu-models.ts';
import { parseDemand } from '../demand.ts';
import type { KubePod } from '../kube-objects.ts';

export interface PodShape {
  readonly cpuMilli: number;
  /** Host memory; within a typical shape, the median of its pods. */
  readonly memoryMiB: number;
  /** 0 for CPU-only pods. */
  readonly gpus: number;
  /** Per GPU, 1..1000 (1000 for whole GPUs). */
  readonly milliPerGpu: number;
  /** Allowed models, or null for any. */
  readonly models: readonly string[] | null;
}

/** The shapes of the fraction-node GPU pods among `pods`, the ones a profile is made of; unreadable pods are left out. */
export function gpuPodShapes(pods: Iterable<KubePod>): PodShape[] {
  const shapes: PodShape[] = [];
  for (const pod of pods) {
    const parsed = parseDemand(pod);
    const f = parsed.ok ? parsed.demand.fraction : null;
    if (!parsed.ok || f === null) continue;
    const d = parsed.demand;
    shapes.push({
      cpuMilli: d.cpuMilli,
      memoryMiB: d.memoryMiB,
      gpus: f.gpus,
      milliPerGpu: f.milliPerGpu,
      models: d.models,
    });
  }
  return shapes;
}

export interface TypicalShape extends PodShape {
  readonly weight: number;
}

export interface WorkloadProfile {
  readonly shapes: readonly TypicalShape[];
}

export const EMPTY_PROFILE: WorkloadProfile = { shapes: [] };

/** Memory is left out of the key (as in FGD): it varies too much to group by, so a shape carries its median. */
function shapeKey(s: PodShape): string {
  return `${s.cpuMilli}/${s.gpus}/${s.milliPerGpu}/${s.models?.join('|') ?? ''}`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/**
 * The smallest set of most frequent shapes that covers `coverage` of the pods, with weights renormalised to 1.
 * Ties in frequency are broken by the shape key so the profile does not depend on input order.
 */
export function typicalShapes(pods: Iterable<PodShape>, coverage = 0.95): WorkloadProfile {
  const counts = new Map<string, { shape: PodShape; n: number; memory: number[] }>();
  let total = 0;
  for (const p of pods) {
    const key = shapeKey(p);
    const entry = counts.get(key);
    if (entry) {
      entry.n++;
      entry.memory.push(p.memoryMiB);
    } else counts.set(key, { shape: p, n: 1, memory: [p.memoryMiB] });
    total++;
  }
  if (total === 0) return EMPTY_PROFILE;
  const ranked = [...counts.entries()].sort(([ka, a], [kb, b]) => b.n - a.n || (ka < kb ? -1 : ka > kb ? 1 : 0));
  const picked: { shape: PodShape; n: number; memory: number[] }[] = [];
  let covered = 0;
  for (const [, entry] of ranked) {
    if (covered >= coverage * total) break;
    picked.push(entry);
    covered += entry.n;
  }
  return {
    shapes: picked.map(({ shape, n, memory }) => ({ ...shape, memoryMiB: median(memory), weight: n / covered })),
  };
}

/** For each typical shape, whether it may run on a GPU of this model (cached by callers per model). */
export function shapesAllowedOn(profile: WorkloadProfile, model: string | null): boolean[] {
  return profile.shapes.map(
    (s) => s.models === null || (model !== null && s.models.some((m) => modelMatches(model, m))),
  );
}
