// What a pod asks of a pool (from its annotations, else its GPU resources), and what a pool's plan for it is: the
// shapes every pool planner (device plugin, fraction, DRA) takes and returns.

import type { PodDemand } from '../demand.ts';
import { GPU_MILLI, NVIDIA_GPU, NVIDIA_GPU_SHARED, NVIDIA_MIG_PREFIX } from '../well-known-names.ts';

export type GpuAsk =
  | { readonly kind: 'none' }
  /**
   * A share of one GPU by compute (milli) and/or memory. With memory alone, compute follows memory on the GPU it gets,
   * never below `floorMilli` (a tessera.io/gpu-milli limit written beside the memory); `models` are the GPU models the
   * pod allows (tessera.io/gpu-model), or null for any.
   */
  | {
      readonly kind: 'share';
      readonly milli: number | null;
      readonly memoryMiB: number | null;
      readonly floorMilli?: number;
      readonly models?: readonly string[] | null;
    }
  | { readonly kind: 'whole'; readonly count: number }
  | { readonly kind: 'mig'; readonly profile: string; readonly count: number }
  | { readonly kind: 'replica'; readonly resource: string; readonly count: number }
  | { readonly kind: 'milli'; readonly milli: number }
  /** Accelerator devices by resource name (KubeVirt's passthrough and vGPU devices), met only by pools that list them. */
  | { readonly kind: 'devices'; readonly devices: Readonly<Record<string, number>> };

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
  // A virt-launcher pod carries its VM's devices and every annotation of the VM (a gpu-fraction the VM's admission
  // already turned into a vGPU profile): the devices are what it holds.
  if (Object.keys(demand.devices).length > 0) return { kind: 'devices', devices: demand.devices };
  const i = demand.intent;
  if (i.migProfile !== null) return { kind: 'mig', profile: i.migProfile, count: i.count ?? 1 };
  const r = demand.gpuResources;
  if (i.milli !== null) return { kind: 'share', milli: i.milli, memoryMiB: i.memoryMiB };
  if (i.memoryMiB !== null) {
    const milli = r[GPU_MILLI];
    const floorMilli = milli !== undefined && milli <= 1000 ? milli : 0;
    return { kind: 'share', milli: null, memoryMiB: i.memoryMiB, floorMilli, models: demand.models };
  }
  if (i.count !== null) return { kind: 'whole', count: i.count };
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
    case 'devices':
      return Object.entries(ask.devices)
        .map(([r, n]) => `${n} x ${r}`)
        .join(', ');
  }
}
