// How a pod's GPU ask is met in a pool: the concrete resources the webhook writes into the GPU container, and what
// the pod weighs against its tenant's quota (GPU-equivalents). The mapping follows each pool's fractionMode as the
// policy file contract describes it.

import { lookupModel } from '../catalog/gpu-models.ts';
import type { MigGeometry, MigProfile } from '../catalog/mig-geometry.ts';
import { GPU_MILLI, NVIDIA_GPU, NVIDIA_MIG_PREFIX } from '../well-known-names.ts';
import type { Pool } from '../policy/model.ts';
import { planDra } from '../dra/dra-plan.ts';
import { describeAsk, type GpuAsk, type PlanResult } from './gpu-ask.ts';
import { candidateModels, memoryShareRange } from './memory-share.ts';
import { planDevicePool } from './device-plan.ts';

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
      // Memory alone: compute follows memory on the GPU the extender picks. The request carries the least share it
      // can take (kube-scheduler's node check must not refuse a roomier GPU); quota reserves the most it can take,
      // until the assignment says what it took (docs/memory-asks.md).
      const range = memoryShareRange(candidateModels(pool, ask.models ?? null), ask.memoryMiB!, ask.floorMilli ?? 0);
      if (range === null)
        return fail(
          `no GPU that pool ${pool.name} may give this pod has ${ask.memoryMiB} MiB of memory; ask for less memory, or whole GPUs with tessera.io/gpu-count`,
        );
      return ok({ [GPU_MILLI]: String(range.least.milli) }, range.most.milli / 1000);
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
    case 'passthrough':
    case 'vgpu':
      return planDevicePool(pool, ask);
  }
}
