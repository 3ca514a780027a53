// How a pod's GPU ask is met in a pool: the concrete resources the webhook writes into the GPU container, and what
// the pod weighs against its tenant's quota (GPU-equivalents). The mapping follows each pool's fractionMode as the
// policy file contract describes it.

import { lookupModel } from '../catalog/gpu-models.ts';
import type { MigGeometry, MigProfile } from '../catalog/mig-geometry.ts';
import type { PodDemand } from '../demand.ts';
import { GPU_MILLI, NVIDIA_GPU, NVIDIA_GPU_SHARED, NVIDIA_MIG_PREFIX } from '../well-known-names.ts';
import type { Pool } from '../policy/model.ts';
import { planDra } from '../dra/dra-plan.ts';

export type GpuAsk =
  | { readonly kind: 'none' }
  /** A share of one GPU by compute (milli) and/or memory. */
  | { readonly kind: 'share'; readonly milli: number | null; readonly memoryMiB: number | null }
  | { readonly kind: 'whole'; readonly count: number }
  | { readonly kind: 'mig'; readonly profile: string; readonly count: number }
  | { readonly kind: 'replica'; readonly resource: string; readonly count: number }
  | { readonly kind: 'milli'; readonly milli: number };

export interface GpuPlan {
  /** GPU resources for the GPU container's limits (and requests), as quantities. */
  readonly limits: Readonly<Record<string, string>>;
  /** What the pod counts against quota: whole GPU 1, fraction f, MIG compute/7, replica 1/replicas. */
  readonly equivalents: number;
}

export type PlanResult =
  | { readonly ok: true; readonly plan: GpuPlan }
  | { readonly ok: false; readonly message: string };

/** The ask stated by annotations, else by native GPU resources. */
export function gpuAsk(demand: PodDemand): GpuAsk {
  const i = demand.intent;
  if (i.migProfile !== null) return { kind: 'mig', profile: i.migProfile, count: i.count ?? 1 };
  if (i.milli !== null || i.memoryMiB !== null) return { kind: 'share', milli: i.milli, memoryMiB: i.memoryMiB };
  if (i.count !== null) return { kind: 'whole', count: i.count };
  const r = demand.gpuResources;
  if (r[GPU_MILLI] !== undefined) return { kind: 'milli', milli: r[GPU_MILLI] };
  const mig = Object.keys(r).filter((k) => k.startsWith(NVIDIA_MIG_PREFIX));
  if (mig.length === 1) return { kind: 'mig', profile: mig[0]!.slice(NVIDIA_MIG_PREFIX.length), count: r[mig[0]!]! };
  if (r[NVIDIA_GPU_SHARED] !== undefined)
    return { kind: 'replica', resource: NVIDIA_GPU_SHARED, count: r[NVIDIA_GPU_SHARED] };
  if (r[NVIDIA_GPU] !== undefined) return { kind: 'whole', count: r[NVIDIA_GPU] };
  return { kind: 'none' };
}

export function describeAsk(ask: GpuAsk): string {
  switch (ask.kind) {
    case 'none':
      return 'no GPU';
    case 'share':
      return [
        ask.milli !== null ? `${ask.milli / 1000} of a GPU` : null,
        ask.memoryMiB !== null ? `${ask.memoryMiB} MiB of GPU memory` : null,
      ]
        .filter(Boolean)
        .join(' with ');
    case 'whole':
      return `${ask.count} whole GPU(s)`;
    case 'mig':
      return `${ask.count} x MIG ${ask.profile}`;
    case 'replica':
      return `${ask.count} x ${ask.resource}`;
    case 'milli':
      return `${ask.milli} ${GPU_MILLI}`;
  }
}

/**
 * The smallest MIG profile (fewest compute slices, then least memory) whose shares of the model's compute and memory
 * slices are each at least the fraction, and whose memory covers the memory asked for.
 */
export function migProfileFor(
  geometry: MigGeometry,
  milli: number | null,
  memoryMiB: number | null,
): MigProfile | null {
  const candidates = geometry.profiles
    .filter((p) => !p.mediaExtensions)
    .filter(
      (p) =>
        milli === null ||
        (p.computeSlices * 1000 >= milli * geometry.computeSlices &&
          p.memorySlices * 1000 >= milli * geometry.memorySlices),
    )
    .filter((p) => memoryMiB === null || p.memoryMiB >= memoryMiB)
    .sort((a, b) => a.computeSlices - b.computeSlices || a.memoryMiB - b.memoryMiB);
  return candidates[0] ?? null;
}

const fail = (message: string): PlanResult => ({ ok: false, message });
const ok = (limits: Record<string, string>, equivalents: number): PlanResult => ({
  ok: true,
  plan: { limits, equivalents },
});

function planFraction(pool: Pool, ask: GpuAsk): PlanResult {
  switch (ask.kind) {
    case 'share': {
      if (ask.milli !== null) return ok({ [GPU_MILLI]: String(ask.milli) }, ask.milli / 1000);
      // Memory alone: the compute share follows memory on the pool's model; without a model the extender works it
      // out per node and the request carries the minimum.
      const model = pool.gpuModel === null ? null : lookupModel(pool.gpuModel);
      const milli = model ? Math.min(1000, Math.ceil((ask.memoryMiB! * 1000) / model.memoryMiB)) : 1;
      return ok({ [GPU_MILLI]: String(milli) }, milli / 1000);
    }
    case 'whole':
      return ok({ [GPU_MILLI]: String(ask.count * 1000) }, ask.count);
    case 'milli':
      return ok({ [GPU_MILLI]: String(ask.milli) }, ask.milli / 1000);
    default:
      return fail(
        `pool ${pool.name} shares GPUs by Tessera fractions; it cannot give ${describeAsk(ask)}. Ask with tessera.io/gpu-fraction, tessera.io/gpu-memory or tessera.io/gpu-count`,
      );
  }
}

function planMig(pool: Pool, ask: GpuAsk): PlanResult {
  const model = pool.gpuModel === null ? null : lookupModel(pool.gpuModel);
  const geometry = model?.mig ?? null;
  if (geometry === null) return fail(`pool ${pool.name} has no MIG-capable GPU model`);
  const instance = (p: MigProfile, count: number): PlanResult =>
    ok({ [`${NVIDIA_MIG_PREFIX}${p.name}`]: String(count) }, (count * p.computeSlices) / geometry.computeSlices);
  switch (ask.kind) {
    case 'share': {
      const p = migProfileFor(geometry, ask.milli, ask.memoryMiB);
      if (p === null)
        return fail(
          `no MIG profile of ${model!.name} holds ${describeAsk(ask)}; the largest is ${geometry.profiles[geometry.profiles.length - 1]!.name}`,
        );
      return instance(p, 1);
    }
    case 'whole': {
      const full = geometry.profiles.find((p) => p.computeSlices === geometry.computeSlices)!;
      return instance(full, ask.count);
    }
    case 'mig': {
      const p = geometry.profiles.find((x) => x.name === ask.profile);
      if (!p)
        return fail(
          `MIG profile ${ask.profile} does not exist on ${model!.name} (pool ${pool.name}); its profiles are ${geometry.profiles.map((x) => x.name).join(', ')}`,
        );
      return instance(p, ask.count);
    }
    default:
      return fail(
        `pool ${pool.name} offers MIG instances of ${model!.name}; it cannot give ${describeAsk(ask)}. Ask with tessera.io/gpu-fraction or tessera.io/mig-profile`,
      );
  }
}

function planReplicas(pool: Pool, ask: GpuAsk): PlanResult {
  const replicas = pool.replicas ?? 1;
  const mode = pool.fractionMode;
  switch (ask.kind) {
    case 'share': {
      if (ask.milli !== null && ask.milli * replicas > 1000) {
        return fail(
          `pool ${pool.name} shares each GPU by ${mode} in ${replicas} replicas, so a pod gets at most 1/${replicas} of a GPU; ask for tessera.io/gpu-fraction <= ${Math.floor(1000 / replicas) / 1000} or use a pool with fraction or MIG sharing`,
        );
      }
      const model = pool.gpuModel === null ? null : lookupModel(pool.gpuModel);
      if (ask.memoryMiB !== null && model && ask.memoryMiB * replicas > model.memoryMiB) {
        return fail(
          `pool ${pool.name} gives each ${mode} replica 1/${replicas} of ${model.memoryMiB} MiB; ${ask.memoryMiB} MiB does not fit one replica`,
        );
      }
      return ok({ [pool.resource]: '1' }, 1 / replicas);
    }
    case 'replica':
      if (ask.resource !== pool.resource)
        return fail(`pool ${pool.name} serves replicas as ${pool.resource}, not ${ask.resource}`);
      return ok({ [pool.resource]: String(ask.count) }, ask.count / replicas);
    default:
      return fail(
        `pool ${pool.name} shares GPUs by ${mode}: a replica is a slice of time on a GPU, not ${describeAsk(ask)}. Ask for a share with tessera.io/gpu-fraction <= 1/${replicas}`,
      );
  }
}

function planWhole(pool: Pool, ask: GpuAsk): PlanResult {
  if (ask.kind === 'whole') return ok({ [NVIDIA_GPU]: String(ask.count) }, ask.count);
  if (ask.kind === 'share' && ask.milli === 1000 && ask.memoryMiB === null) return ok({ [NVIDIA_GPU]: '1' }, 1);
  return fail(
    `pool ${pool.name} gives whole GPUs only; it cannot give ${describeAsk(ask)}. Ask with tessera.io/gpu-count or choose a pool that shares GPUs`,
  );
}

/** Plans the ask in the pool, or says why the pool cannot meet it. */
export function planInPool(pool: Pool, ask: GpuAsk): PlanResult {
  if (ask.kind === 'none') return ok({}, 0);
  switch (pool.fractionMode) {
    case 'fraction':
      return planFraction(pool, ask);
    case 'mig':
      return planMig(pool, ask);
    case 'time-slicing':
    case 'mps':
      return planReplicas(pool, ask);
    case 'none':
      return planWhole(pool, ask);
    case 'dra':
      return planDra(pool, ask);
  }
}
