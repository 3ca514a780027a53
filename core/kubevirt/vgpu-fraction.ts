// A tessera.io/gpu-fraction (or gpu-memory) on a VM: met with a vGPU, the smallest profile a vgpu pool of the tenant
// lists whose share of the GPU (1/perGpu) is at least the fraction. It is applied where the VM's device is named, in
// the VirtualMachineInstance (or the VirtualMachine's template): virt-launcher finds its device by that deviceName, so
// rewriting the launcher pod's resources alone would hand the VM nothing. The launcher pod then carries the profile as
// its device, and the annotations (copied from the VMI by virt-controller) say which pool.

import { parseDemand } from '../demand.ts';
import { poolNamed, type Policy, type Pool, type Tenant } from '../policy/model.ts';
import { vgpuProfileFor } from '../pools/device-plan.ts';
import { GPU_FRACTION, POOL_ANNOTATION } from '../well-known-names.ts';
import { deviceList, launcherPodOf, type VmDevice, type VmiView } from './vm-objects.ts';

export type VgpuChoice =
  | { readonly ok: true; readonly pool: Pool; readonly deviceName: string }
  | { readonly ok: false; readonly message: string };

/** The device-plugin GPUs of the VMI (gpus[] entries with a deviceName and no claim). */
function pluginGpus(view: VmiView): VmDevice[] {
  return deviceList(view.spec.domain?.devices?.gpus).filter(
    (d) => typeof d.deviceName === 'string' && d.deviceName !== '' && d.claimName === undefined,
  );
}

/**
 * The vGPU profile for a VM's fraction, or null when the VM asks for none (or names its devices itself: a VM that
 * lists other devices, or a vGPU of no vgpu pool of its tenant, keeps them, and is charged what they weigh).
 */
export function chooseVgpu(view: VmiView, tenant: Tenant, policy: Policy): VgpuChoice | null {
  // Where the profile would be written must be objects (a malformed VMI is the validating stage's to judge).
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  const domain = isObject(view.spec) ? view.spec.domain : null;
  if (
    !isObject(view.spec) ||
    (domain != null && !isObject(domain)) ||
    (domain?.devices != null && !isObject(domain.devices))
  )
    return null;
  const parsed = parseDemand(launcherPodOf(view, ''), policy.accelerators);
  if (!parsed.ok) return null;
  const { milli, memoryMiB } = parsed.demand.intent;
  if (milli === null && memoryMiB === null) return null;
  const vgpuPools = tenant.pools
    .map((name) => poolNamed(policy, name))
    .filter((p): p is Pool => p !== undefined && p.fractionMode === 'vgpu');
  const gpus = pluginGpus(view);
  const hostDevices = deviceList(view.spec.domain?.devices?.hostDevices).filter((d) => d.deviceName);
  const ownVgpu = (name: string) => vgpuPools.some((p) => p.deviceResources.some((d) => d.resource === name));
  if (hostDevices.length > 0 || gpus.length > 1 || (gpus.length === 1 && !ownVgpu(gpus[0]!.deviceName!))) return null;
  const named = parsed.demand.intent.pool;
  const candidates = named === null ? vgpuPools : vgpuPools.filter((p) => p.name === named);
  const asked = milli !== null ? `${GPU_FRACTION}=${milli / 1000}` : `tessera.io/gpu-memory=${memoryMiB} MiB`;
  if (candidates.length === 0)
    return {
      ok: false,
      message: `${asked} on a VM is met with a vGPU, but ${named === null ? `tenant ${tenant.name} has no vgpu pool` : `${POOL_ANNOTATION}=${named} is not a vgpu pool of tenant ${tenant.name}`}; name a vGPU or passthrough device in spec.domain.devices.gpus[].deviceName instead, or ask a platform admin for a vgpu pool`,
    };
  for (const pool of candidates) {
    const profile = vgpuProfileFor(pool, milli, memoryMiB);
    if (profile !== null) return { ok: true, pool, deviceName: profile.resource };
  }
  const offered = candidates
    .map((p) => `${p.name}: ${p.deviceResources.map((d) => `${d.resource} (1/${d.perGpu})`).join(', ')}`)
    .join('; ');
  return {
    ok: false,
    message: `${asked} on a VM: no vGPU profile of tenant ${tenant.name}'s vgpu pools is that large (${offered}); ask for less, or name a passthrough device in spec.domain.devices.gpus[].deviceName`,
  };
}

/** Applies the choice to the VMI-shaped part in place: one gpus[] entry with the profile, and the pool annotation. */
export function applyVgpu(view: VmiView, choice: { pool: Pool; deviceName: string }): void {
  const domain = (view.spec.domain ??= {});
  const devices = (domain.devices ??= {});
  if (!Array.isArray(devices.gpus)) devices.gpus = [];
  const existing = pluginGpus(view)[0];
  if (existing) existing.deviceName = choice.deviceName;
  else devices.gpus.push({ name: 'tessera-vgpu', deviceName: choice.deviceName });
  (view.meta.annotations ??= {})[POOL_ANNOTATION] = choice.pool.name;
}
