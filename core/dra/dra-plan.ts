// How a pod's annotation or native GPU ask is met in a dra pool: kube-scheduler's DRA plugin allocates the devices,
// and the pod asks for them with the extended resources NVIDIA's DeviceClasses map to DRA (KEP-5004): whole GPUs as
// `nvidia.com/gpu`, a MIG device as `nvidia.com/mig-<profile>`. A share of one GPU has no such resource: it is denied
// unless one of the pool's DeviceClasses lets several claims share a device (consumable capacity, KEP-5075).

import { lookupModel } from '../catalog/gpu-models.ts';
import { MIG_PROFILE_PATTERN, type MigGeometry } from '../catalog/mig-geometry.ts';
import type { Pool } from '../policy/model.ts';
import { NVIDIA_GPU, NVIDIA_MIG_PREFIX } from '../well-known-names.ts';
import type { GpuAsk, PlanResult } from '../pools/gpu-ask.ts';

/** The MIG geometry of a pool's GPU model, when the policy names a MIG-capable model. */
export function poolGeometry(pool: Pool): MigGeometry | null {
  return pool.gpuModel === null ? null : (lookupModel(pool.gpuModel)?.mig ?? null);
}

/**
 * GPU-equivalents of one MIG device of a profile: its compute slices over the GPU's (the pool's model, else the 7 of
 * A100/H100/H200), or null when the pool's model has no such profile.
 */
export function migDeviceEquivalents(pool: Pool | null, profile: string): number | null {
  const geometry = pool === null ? null : poolGeometry(pool);
  if (geometry !== null) {
    const p = geometry.profiles.find((x) => x.name === profile);
    return p ? p.computeSlices / geometry.computeSlices : null;
  }
  const g = MIG_PROFILE_PATTERN.exec(profile);
  return g ? Math.min(1, Number(g[1]) / 7) : null;
}

function describe(ask: GpuAsk): string {
  switch (ask.kind) {
    case 'share':
      return ask.milli !== null ? `${ask.milli / 1000} of a GPU` : `${ask.memoryMiB} MiB of GPU memory`;
    case 'milli':
      return `${ask.milli} tessera.io/gpu-milli`;
    case 'replica':
      return `${ask.count} x ${ask.resource}`;
    default:
      return ask.kind;
  }
}

/** Plans an annotation or native ask in a dra pool. */
export function planDra(pool: Pool, ask: GpuAsk): PlanResult {
  const classes = pool.deviceClasses.join(', ');
  switch (ask.kind) {
    case 'none':
      return { ok: true, plan: { limits: {}, equivalents: 0 } };
    case 'whole':
      return { ok: true, plan: { limits: { [NVIDIA_GPU]: String(ask.count) }, equivalents: ask.count } };
    case 'mig': {
      const each = migDeviceEquivalents(pool, ask.profile);
      if (each === null) {
        const geometry = poolGeometry(pool);
        return {
          ok: false,
          message: `MIG profile ${ask.profile} does not exist on ${pool.gpuModel} (pool ${pool.name}); its profiles are ${geometry?.profiles.map((p) => p.name).join(', ') ?? '(unknown)'}`,
        };
      }
      return {
        ok: true,
        plan: { limits: { [`${NVIDIA_MIG_PREFIX}${ask.profile}`]: String(ask.count) }, equivalents: each * ask.count },
      };
    }
    case 'share':
      if (ask.milli === 1000 && ask.memoryMiB === null)
        return { ok: true, plan: { limits: { [NVIDIA_GPU]: '1' }, equivalents: 1 } };
      return {
        ok: false,
        message: `pool ${pool.name} gets its GPUs from DRA (DeviceClasses ${classes}), and none of them lets several claims share one device, so it cannot give ${describe(ask)}. Ask for whole GPUs with tessera.io/gpu-count or a MIG device with tessera.io/mig-profile, or use a pool with fraction or MIG sharing`,
      };
    default:
      return {
        ok: false,
        message: `pool ${pool.name} gets its GPUs from DRA (DeviceClasses ${classes}); it cannot give ${describe(ask)}. Ask for whole GPUs with tessera.io/gpu-count or nvidia.com/gpu, a MIG device with tessera.io/mig-profile, or name a ResourceClaim of one of its DeviceClasses`,
      };
  }
}
