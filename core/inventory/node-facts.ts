// The raw facts of a node that every mode reader looks at: CPU and memory, GPU extended resources, GFD's product,
// count and memory labels, the sharing and MIG strategies, and MIG instance counts.

import { canonicalModelName, lookupModel, type GpuModel } from '../catalog/gpu-models.ts';
import { MIG_PROFILE_PATTERN } from '../catalog/mig-geometry.ts';
import type { KubeNode } from '../kube-objects.ts';
import { cpuMilli, memoryMiB, parseQuantity } from '../quantity.ts';
import {
  GFD,
  GPU_MILLI,
  NVIDIA_GPU,
  NVIDIA_GPU_SHARED,
  NVIDIA_MIG_PREFIX,
  SHARING_LABEL,
} from '../well-known-names.ts';
import type { Findings } from './findings.ts';
import { BUILT_IN_ACCELERATORS, type AcceleratorNames } from '../accelerators/resource-names.ts';

export interface NodeFacts {
  readonly labels: Record<string, string>;
  readonly cpuMilli: number;
  readonly memoryMiB: number;
  /** GPU extended resources in status.allocatable (nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-*, gpu-milli). */
  readonly resources: Record<string, number>;
  /** Accelerator devices in status.allocatable beyond Tessera's GPU names (VM passthrough and vGPU devices). */
  readonly devices: Record<string, number>;
  /** GFD's nvidia.com/gpu.product, as published. */
  readonly product: string | undefined;
  readonly model: string | null;
  readonly catalog: GpuModel | null;
  readonly migStrategy: 'none' | 'single' | 'mixed';
  /** GFD's nvidia.com/gpu.sharing-strategy, 'none' when absent. */
  readonly sharing: string;
  readonly fractionLabel: boolean;
  /** nvidia.com/mig-<profile>.count labels. */
  readonly migCounts: Record<string, number>;
  readonly hasMigResources: boolean;
  readonly labelCount: number | null;
  readonly labelMemory: number | null;
}

export function label(labels: Record<string, string>, key: string): string | undefined {
  const value = labels[key];
  return value === undefined || value === '' ? undefined : value;
}

export function positiveInt(text: string | undefined): number | null {
  if (text === undefined || !/^\d+$/.test(text)) return null;
  const n = Number(text);
  return n > 0 ? n : null;
}

function readResources(node: KubeNode, problems: string[], which: (key: string) => boolean): Record<string, number> {
  const allocatable = node.status?.allocatable ?? node.status?.capacity ?? {};
  const resources: Record<string, number> = {};
  for (const [key, raw] of Object.entries(allocatable)) {
    if (!which(key)) continue;
    try {
      resources[key] = Math.floor(parseQuantity(raw));
    } catch {
      problems.push(`status.allocatable["${key}"] = ${JSON.stringify(raw)} is not a quantity`);
    }
  }
  return resources;
}

function migCounts(labels: Record<string, string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [key, value] of Object.entries(labels)) {
    const m = /^nvidia\.com\/mig-(.+)\.count$/.exec(key);
    if (!m || !MIG_PROFILE_PATTERN.test(m[1]!)) continue;
    const n = positiveInt(value);
    if (n !== null) counts[m[1]!] = n;
  }
  return counts;
}

const isContainerGpu = (key: string): boolean =>
  key === NVIDIA_GPU || key === NVIDIA_GPU_SHARED || key === GPU_MILLI || key.startsWith(NVIDIA_MIG_PREFIX);

export function readNodeFacts(
  node: KubeNode,
  found: Findings,
  accelerators: AcceleratorNames = BUILT_IN_ACCELERATORS,
): NodeFacts {
  const labels = node.metadata?.labels ?? {};
  const allocatable = node.status?.allocatable ?? node.status?.capacity ?? {};
  let cpu = 0;
  let memory = 0;
  try {
    cpu = allocatable.cpu === undefined ? 0 : cpuMilli(allocatable.cpu);
    memory = allocatable.memory === undefined ? 0 : memoryMiB(allocatable.memory);
  } catch (e) {
    found.problems.push(`status.allocatable cpu/memory unreadable: ${e instanceof Error ? e.message : String(e)}`);
  }
  const resources = readResources(node, found.problems, isContainerGpu);
  const devices = readResources(node, found.problems, (key) => accelerators.isDevice(key));
  const product = label(labels, GFD.product);
  const declared = label(labels, GFD.migStrategy) ?? 'none';
  const migStrategy = declared === 'single' || declared === 'mixed' ? declared : 'none';
  if (declared !== 'none' && migStrategy === 'none')
    found.problems.push(`label ${GFD.migStrategy}=${declared} is not none, single or mixed`);
  return {
    labels,
    cpuMilli: cpu,
    memoryMiB: memory,
    resources,
    devices,
    product,
    model: product === undefined ? null : canonicalModelName(product),
    catalog: product === undefined ? null : lookupModel(product),
    migStrategy,
    sharing: label(labels, GFD.sharingStrategy) ?? 'none',
    fractionLabel: label(labels, SHARING_LABEL) === 'fraction',
    migCounts: migCounts(labels),
    hasMigResources: Object.keys(resources).some((k) => k.startsWith(NVIDIA_MIG_PREFIX) && resources[k]! > 0),
    labelCount: positiveInt(label(labels, GFD.count)),
    labelMemory: positiveInt(label(labels, GFD.memory)),
  };
}
