// Devices of passthrough and vgpu pools (KubeVirt's GPU device plugins): what one device weighs (1/perGpu of a GPU),
// which devices no pool maps (Tessera cannot account for them), how a pod's devices are met in a pool, and which vGPU
// profile of a pool meets a tessera.io/gpu-fraction.

import { lookupModel } from '../catalog/gpu-models.ts';
import type { DeviceResource, Policy, Pool } from '../policy/model.ts';
import type { GpuAsk, PlanResult } from './gpu-ask.ts';

/**
 * The marker the webhook gives a pod with devices, so that kube-scheduler calls the extender for it: device names are
 * the nodes' (PCI products, vGPU types), not a fixed list the scheduler configuration could name. The extender
 * manages it with ignoredByScheduler: true (NodeResourcesFit skips it; the kubelet drops extended resources its node
 * does not advertise). One unit per pod.
 */
export const DEVICES_MARKER = 'tessera.io/devices';

/** GPU-equivalents of one device: 1/perGpu, as the first pool that lists it says (lint keeps pools consistent). */
export function deviceWeight(policy: Policy, resource: string): number | null {
  for (const pool of policy.pools)
    for (const d of pool.deviceResources) if (d.resource === resource) return 1 / d.perGpu;
  return null;
}

/** The GPU-equivalents of devices by their weights; unmapped devices weigh 0 (admission denies them on their own). */
export function devicesEquivalents(devices: Readonly<Record<string, number>>, policy: Policy): number {
  let total = 0;
  for (const [resource, n] of Object.entries(devices)) total += n * (deviceWeight(policy, resource) ?? 0);
  return total;
}

/** Accelerator devices that no pool of the policy maps: Tessera cannot account for them. */
export function unmappedDevices(devices: Readonly<Record<string, number>>, policy: Policy): string[] {
  return Object.keys(devices)
    .filter((r) => deviceWeight(policy, r) === null)
    .sort();
}

/** The denial for a device no pool maps: what it is, and how a platform team maps it. */
export function unmappedDeviceMessage(resource: string, policy: Policy): string {
  const pools = policy.pools.filter((p) => p.fractionMode === 'passthrough' || p.fractionMode === 'vgpu');
  const where =
    pools.length > 0
      ? `to the deviceResources of a passthrough or vgpu pool (${pools.map((p) => p.name).join(', ')})`
      : 'to the deviceResources of a pool with fractionMode passthrough (whole GPUs) or vgpu (vGPU profiles)';
  return `${resource} is an accelerator resource (${policy.accelerators.sourceOf(resource)}) that no pool of the policy maps, so Tessera cannot account for it against tenancy and quota. Ask a platform admin to add { resource: ${resource}, perGpu: <devices per physical GPU> } ${where}, and to list that pool in your tenant's pools. If it is no accelerator (a NIC that NVIDIA's Network Operator publishes under nvidia.com, say), the platform admin lists it in the policy's acceleratorResources.exclude instead`;
}

function listed(pool: Pool, resource: string): DeviceResource | undefined {
  return pool.deviceResources.find((d) => d.resource === resource);
}

/** Plans a pod's devices in a passthrough or vgpu pool: the pool must list every one; they are kept as written. */
export function planDevicePool(pool: Pool, ask: GpuAsk): PlanResult {
  const served = pool.deviceResources.map((d) => d.resource).join(', ');
  if (ask.kind === 'devices') {
    const missing = Object.keys(ask.devices).filter((r) => listed(pool, r) === undefined);
    if (missing.length > 0)
      return { ok: false, message: `pool ${pool.name} serves ${served}, not ${missing.sort().join(', ')}` };
    let equivalents = 0;
    const limits: Record<string, string> = {};
    for (const [r, n] of Object.entries(ask.devices)) {
      equivalents += n / listed(pool, r)!.perGpu;
      limits[r] = String(n);
    }
    return { ok: true, plan: { limits, equivalents } };
  }
  return {
    ok: false,
    message: `pool ${pool.name} gives GPUs to KubeVirt virtual machines as devices (${served}); a VM asks for them in its VirtualMachineInstance (spec.domain.devices.gpus or hostDevices, by deviceName)${pool.fractionMode === 'vgpu' ? ', or with tessera.io/gpu-fraction on the VirtualMachineInstance' : ''}`,
  };
}

/**
 * The smallest listed vGPU profile of a vgpu pool whose share of the GPU (1/perGpu) is at least the fraction (milli
 * of 1000), and whose memory (the model's memory / perGpu, when the pool names a model) covers memoryMiB.
 */
export function vgpuProfileFor(pool: Pool, milli: number | null, memoryMiB: number | null): DeviceResource | null {
  const model = pool.gpuModel === null ? null : lookupModel(pool.gpuModel);
  const candidates = pool.deviceResources
    .filter((d) => milli === null || 1000 >= milli * d.perGpu)
    .filter((d) => memoryMiB === null || (model !== null && model.memoryMiB / d.perGpu >= memoryMiB))
    .sort((a, b) => b.perGpu - a.perGpu);
  return candidates[0] ?? null;
}
