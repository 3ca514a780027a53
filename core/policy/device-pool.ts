// The semantic checks of a pool's device fields that the schema cannot express: deviceResources belong to passthrough
// and vgpu pools only, a passthrough device is a whole GPU (perGpu 1), and a device is never one of the names Tessera
// already accounts in other ways (nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-*, tessera.io/gpu-milli).

import { isGpuResource } from '../well-known-names.ts';
import type { RawSpec } from './documents.ts';
import type { PolicyProblem } from './policy-source.ts';

type PoolSpec = NonNullable<RawSpec['pools']>[number];

export function isDevicePoolMode(mode: string): mode is 'passthrough' | 'vgpu' {
  return mode === 'passthrough' || mode === 'vgpu';
}

export function devicePoolProblems(p: PoolSpec, file: string, path: string): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  if (!isDevicePoolMode(p.fractionMode)) {
    if (p.deviceResources !== undefined)
      problems.push({
        file,
        path: `${path}/deviceResources`,
        message: `deviceResources applies to fractionMode passthrough and vgpu only; remove it or change fractionMode (this pool is ${p.fractionMode})`,
      });
    return problems;
  }
  for (const field of ['resource', 'replicas'] as const) {
    if (p[field] !== undefined)
      problems.push({
        file,
        path: `${path}/${field}`,
        message: `${field} applies to time-slicing and mps pools; a ${p.fractionMode} pool names its devices in deviceResources. Remove it`,
      });
  }
  const seen = new Set<string>();
  (p.deviceResources ?? []).forEach((d, i) => {
    const at = `${path}/deviceResources/${i}`;
    if (seen.has(d.resource))
      problems.push({ file, path: `${at}/resource`, message: `${d.resource} is listed twice in this pool` });
    seen.add(d.resource);
    if (isGpuResource(d.resource))
      problems.push({
        file,
        path: `${at}/resource`,
        message: `${d.resource} is a container GPU resource Tessera already accounts; list the names KubeVirt's GPU device plugin advertises (PCI product names such as nvidia.com/GH100_H100_SXM5_80GB, vGPU types such as nvidia.com/NVIDIA_L40S-12Q)`,
      });
    if (p.fractionMode === 'passthrough' && d.perGpu !== 1)
      problems.push({
        file,
        path: `${at}/perGpu`,
        message: `a passthrough device is one whole GPU, so perGpu must be 1 (got ${d.perGpu}); use fractionMode vgpu for devices that share a GPU`,
      });
  });
  return problems;
}
