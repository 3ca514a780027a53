// Legality and placement of MIG GPU instances on one GPU, as interval packing over memory slices. A layout is legal
// when every instance sits at one of its profile's start offsets, no two overlap, per-profile instance limits hold and
// at most one `+me` instance exists (the GPU has one media-engine set).

import { migProfile, type MigGeometry, type MigProfile } from './mig-geometry.ts';

export interface MigInstance {
  readonly profile: string;
  /** Offset of the first memory slice. */
  readonly start: number;
}

function rangeMask(start: number, size: number): number {
  return ((1 << size) - 1) << start;
}

/** What is wrong with a layout, one message per problem; empty when the layout is legal. */
export function layoutProblems(geometry: MigGeometry, instances: readonly MigInstance[]): string[] {
  const problems: string[] = [];
  let occupied = 0;
  let media = 0;
  const counts = new Map<string, number>();
  for (const instance of instances) {
    const profile = migProfile(geometry, instance.profile);
    if (!profile) {
      problems.push(`profile ${instance.profile} does not exist on ${geometry.family} GPUs`);
      continue;
    }
    if (!profile.starts.includes(instance.start)) {
      problems.push(
        `${profile.name} cannot start at memory slice ${instance.start} (legal: ${profile.starts.join(', ')})`,
      );
      continue;
    }
    const mask = rangeMask(instance.start, profile.memorySlices);
    if (occupied & mask) problems.push(`${profile.name} at slice ${instance.start} overlaps another instance`);
    occupied |= mask;
    const count = (counts.get(profile.name) ?? 0) + 1;
    counts.set(profile.name, count);
    if (count > profile.maxInstances)
      problems.push(`more than ${profile.maxInstances} ${profile.name} instances on one GPU`);
    if (profile.mediaExtensions) media++;
  }
  if (media > 1) problems.push('more than one +me instance on one GPU (a GPU has one media-engine set)');
  return problems;
}

export function occupancyMask(geometry: MigGeometry, instances: readonly MigInstance[]): number {
  let mask = 0;
  for (const instance of instances) {
    const profile = migProfile(geometry, instance.profile);
    if (profile) mask |= rangeMask(instance.start, profile.memorySlices);
  }
  return mask;
}

const reachCache = new WeakMap<MigGeometry, Int8Array>();

/** For every occupancy mask: the most compute slices that further (non-media) instances could still add. */
function reachableCompute(geometry: MigGeometry): Int8Array {
  const cached = reachCache.get(geometry);
  if (cached) return cached;
  const size = 1 << geometry.memorySlices;
  const table = new Int8Array(size).fill(-1);
  const plain = geometry.profiles.filter((p) => !p.mediaExtensions);
  const solve = (mask: number): number => {
    const known = table[mask]!;
    if (known >= 0) return known;
    let best = 0;
    for (const p of plain) {
      for (const start of p.starts) {
        const m = rangeMask(start, p.memorySlices);
        if ((mask & m) === 0) best = Math.max(best, p.computeSlices + solve(mask | m));
      }
    }
    table[mask] = best;
    return best;
  };
  for (let mask = size - 1; mask >= 0; mask--) solve(mask);
  reachCache.set(geometry, table);
  return table;
}

/** Compute slices still reachable on a GPU with this occupancy: the MIG analogue of free capacity. */
export function reachableComputeSlices(geometry: MigGeometry, mask: number): number {
  return reachableCompute(geometry)[mask]!;
}

/**
 * The start offset for one more instance of `profile`, or null when none is legal. Among legal offsets it keeps the most
 * compute reachable for later instances, then the highest offset (low offsets are the only home of 4g and 7g).
 */
export function choosePlacement(
  geometry: MigGeometry,
  instances: readonly MigInstance[],
  profile: MigProfile,
): number | null {
  const same = instances.filter((i) => i.profile === profile.name).length;
  if (same >= profile.maxInstances) return null;
  if (profile.mediaExtensions && instances.some((i) => migProfile(geometry, i.profile)?.mediaExtensions)) return null;
  const mask = occupancyMask(geometry, instances);
  const table = reachableCompute(geometry);
  let best: number | null = null;
  let bestReach = -1;
  for (const start of profile.starts) {
    const m = rangeMask(start, profile.memorySlices);
    if (mask & m) continue;
    const reach = table[mask | m]!;
    if (reach > bestReach || (reach === bestReach && best !== null && start > best)) {
      best = start;
      bestReach = reach;
    }
  }
  return best;
}

export interface LayoutReconstruction {
  readonly gpus: readonly (readonly MigInstance[])[];
  readonly problem: string | null;
}

/**
 * Spreads a node's per-profile instance counts (GFD `mig-<profile>.count` labels) over its GPUs in a legal way. The
 * device plugin reports only counts, so Tessera needs one legal layout to reason about slices; any legal one serves,
 * because instances of a profile are interchangeable to a pod. Largest instances go first, each on the GPU where it
 * keeps the most compute reachable.
 */
export function reconstructLayout(
  geometry: MigGeometry,
  gpuCount: number,
  counts: Readonly<Record<string, number>>,
): LayoutReconstruction {
  const gpus: MigInstance[][] = Array.from({ length: gpuCount }, () => []);
  const wanted: MigProfile[] = [];
  for (const [name, count] of Object.entries(counts)) {
    const profile = migProfile(geometry, name);
    if (!profile) return { gpus, problem: `MIG profile ${name} does not exist on ${geometry.family} GPUs` };
    for (let i = 0; i < count; i++) wanted.push(profile);
  }
  wanted.sort(
    (a, b) => b.memorySlices - a.memorySlices || b.computeSlices - a.computeSlices || a.name.localeCompare(b.name),
  );
  const table = reachableCompute(geometry);
  for (const profile of wanted) {
    let target = -1;
    let targetStart = -1;
    let targetReach = -1;
    gpus.forEach((instances, index) => {
      const start = choosePlacement(geometry, instances, profile);
      if (start === null) return;
      const reach = table[occupancyMask(geometry, instances) | rangeMask(start, profile.memorySlices)]!;
      if (reach > targetReach) {
        target = index;
        targetStart = start;
        targetReach = reach;
      }
    });
    if (target < 0) {
      const summary = Object.entries(counts)
        .map(([n, c]) => `${c}x${n}`)
        .join(', ');
      return {
        gpus,
        problem: `MIG instance counts (${summary}) cannot be laid out legally on ${gpuCount} ${geometry.family} GPU(s)`,
      };
    }
    gpus[target]!.push({ profile: profile.name, start: targetStart });
  }
  return { gpus, problem: null };
}
