// Which extended resources are accelerators: names under GPU and accelerator vendors' domains, as their device plugins
// advertise them. Tessera accounts for its own GPU names (nvidia.com/gpu, gpu.shared, mig-*, tessera.io/gpu-milli)
// and for the device resources a pool maps (deviceResources); any other accelerator is a way around tenancy and quota,
// so admission denies it in every namespace it serves. The policy may widen the list (spec.acceleratorResources).

import { isGpuResource } from '../well-known-names.ts';

/** A vendor's accelerator names: a prefix of the resource name, and where its device plugin publishes them. */
export interface AcceleratorDomain {
  readonly prefix: string;
  readonly source: string;
}

/**
 * The built-in list. Each entry names the device plugin it comes from; docs/vms.md says why each counts.
 * - nvidia.com/: NVIDIA's container device plugin (gpu, gpu.shared, mig-*), KubeVirt's and NVIDIA's sandbox device
 *   plugins for VMs (PCI product names such as GH100_H100_SXM5_80GB, vGPU types such as GRID_T4-1Q;
 *   NVIDIA/kubevirt-gpu-device-plugin pkg/device_plugin), HAMi's nvidia.com/gpumem and gpucores.
 * - amd.com/: ROCm/k8s-device-plugin (amd.com/gpu and its partition names).
 * - gpu.intel.com/: intel-device-plugins-for-kubernetes cmd/gpu_plugin (i915, xe, millicores, memory.max, tiles).
 * - habana.ai/: Habana's device plugin (gaudi, gaudi2, ...).
 * - aws.amazon.com/neuron: AWS Neuron device plugin (neuron, neuroncore, the retired neurondevice).
 * - google.com/tpu: GKE's TPU device plugin.
 * - xilinx.com/: Xilinx (AMD) FPGA device plugin (xilinx.com/fpga-...).
 * - cambricon.com/, hygon.com/, metax-tech.com/, enflame.com/, mthreads.com/, iluvatar.ai/: the accelerator device
 *   plugins HAMi integrates (Project-HAMi/HAMi charts device-config: vmlu, dcunum, gpu, vgcu, vgpu, ...).
 */
export const ACCELERATOR_DOMAINS: readonly AcceleratorDomain[] = [
  { prefix: 'nvidia.com/', source: "NVIDIA's GPU device plugins, KubeVirt's GPU device plugins for VMs, HAMi" },
  { prefix: 'amd.com/', source: "AMD's GPU device plugin" },
  { prefix: 'gpu.intel.com/', source: "Intel's GPU device plugin" },
  { prefix: 'habana.ai/', source: "Habana's Gaudi device plugin" },
  { prefix: 'aws.amazon.com/neuron', source: "AWS's Neuron device plugin" },
  { prefix: 'google.com/tpu', source: "Google's TPU device plugin" },
  { prefix: 'xilinx.com/', source: "Xilinx's FPGA device plugin" },
  { prefix: 'cambricon.com/', source: "Cambricon's MLU device plugin" },
  { prefix: 'hygon.com/', source: "Hygon's DCU device plugin" },
  { prefix: 'metax-tech.com/', source: "MetaX's GPU device plugin" },
  { prefix: 'enflame.com/', source: "Enflame's GCU device plugin" },
  { prefix: 'mthreads.com/', source: "Moore Threads' GPU device plugin" },
  { prefix: 'iluvatar.ai/', source: "Iluvatar's GPU device plugin" },
];

/**
 * Names under those domains that are not accelerators: NVIDIA's Network Operator publishes its NICs under nvidia.com
 * (the SR-IOV device plugin's resourcePrefix "nvidia.com", resourceName "hostdev" in NVIDIA's host-device quick
 * start). Exact names only: a prefix here would open a door for any device named after it.
 */
export const NOT_ACCELERATORS: readonly string[] = ['nvidia.com/hostdev'];

/** How a policy widens (include) or corrects (exclude) the built-in list. */
export interface AcceleratorNamesSpec {
  /** Exact names, or prefixes ending in "/" or "*" ("acme.example/", "intel.com/U6*"). */
  readonly include: readonly string[];
  /** Exact names of non-accelerators under an accelerator domain (a NIC published as nvidia.com/...). */
  readonly exclude: readonly string[];
  /** Device resources pools map: always accelerators, whatever their domain. */
  readonly mapped: readonly string[];
}

export interface AcceleratorNames {
  /** Whether the resource is an accelerator beyond Tessera's own GPU names. */
  isDevice(name: string): boolean;
  /** Where the name comes from, for messages. */
  sourceOf(name: string): string;
}

function matches(pattern: string, name: string): boolean {
  if (pattern.endsWith('*')) return name.startsWith(pattern.slice(0, -1));
  if (pattern.endsWith('/')) return name.startsWith(pattern);
  return name === pattern;
}

export function acceleratorNames(spec: AcceleratorNamesSpec): AcceleratorNames {
  const mapped = new Set(spec.mapped);
  const exclude = new Set([...NOT_ACCELERATORS, ...spec.exclude]);
  const sourceOf = (name: string): string => {
    if (mapped.has(name)) return 'a pool of the policy maps it';
    const domain = ACCELERATOR_DOMAINS.find((d) => name.startsWith(d.prefix));
    if (domain) return `${domain.prefix}* is published by ${domain.source}`;
    const included = spec.include.find((p) => matches(p, name));
    return included === undefined
      ? 'not an accelerator'
      : `the policy's acceleratorResources.include lists ${included}`;
  };
  return {
    isDevice(name) {
      if (isGpuResource(name)) return false;
      if (mapped.has(name)) return true;
      if (exclude.has(name)) return false;
      return ACCELERATOR_DOMAINS.some((d) => name.startsWith(d.prefix)) || spec.include.some((p) => matches(p, name));
    },
    sourceOf,
  };
}

/** The built-in list alone: for callers without a policy. */
export const BUILT_IN_ACCELERATORS: AcceleratorNames = acceleratorNames({ include: [], exclude: [], mapped: [] });
