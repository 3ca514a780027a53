// A GPU node as Tessera sees it, read from what GFD, the device plugin, the MIG manager and Tessera's own capacity
// controller publish. Reading never throws: a node with missing or contradictory labels carries its problems and is
// marked unusable for GPU work, so filter can name the reason instead of crashing or guessing.

import type { MigGeometry } from '../catalog/mig-geometry.ts';
import type { MigInstance } from '../catalog/mig-layout.ts';
import type { KubeNode, Taint } from '../kube-objects.ts';
import { GFD, GPU_TOPOLOGY } from '../well-known-names.ts';
import { readTopology } from './gpu-topology.ts';
import type { Findings } from './findings.ts';
import { NO_GPU_MODE, type ModeReader, type NodeMode } from './mode-reader.ts';
import { readMigMixedMode } from './modes/mig-mixed.ts';
import { readMigSingleMode } from './modes/mig-single.ts';
import { readFractionMode } from './modes/fraction.ts';
import { readReplicaMode } from './modes/replicas.ts';
import { readExclusiveMode } from './modes/exclusive.ts';
import { readVmDeviceMode } from './modes/vm-devices.ts';
import { BUILT_IN_ACCELERATORS, type AcceleratorNames } from '../accelerators/resource-names.ts';
import { label, readNodeFacts } from './node-facts.ts';

export interface GpuInventory {
  readonly index: number;
  readonly memoryMiB: number;
  readonly numa: number | null;
  /** NVLink island id; GPUs with the same value are NVLink-connected. Null when unknown (assumed fully connected). */
  readonly nvlink: string | null;
  /** MIG instances on this GPU (mig mode only). */
  readonly mig: readonly MigInstance[];
}

export interface NodeInventory {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly taints: readonly Taint[];
  readonly unschedulable: boolean;
  readonly cpuMilli: number;
  readonly memoryMiB: number;
  readonly mode: NodeMode;
  /** Canonical GPU model (GFD product without prefix and decorations), or null on a node without GPUs. */
  readonly model: string | null;
  readonly gpus: readonly GpuInventory[];
  /** Time-slicing / MPS replicas per GPU; 1 otherwise. */
  readonly replicas: number;
  /** The device-plugin resource that pods request on this node (replica or whole-GPU resource), if any. */
  readonly gpuResource: string | null;
  /** Device-plugin extended resources the kubelet will enforce (nvidia.com/gpu, nvidia.com/mig-*, VM devices...). */
  readonly resources: Readonly<Record<string, number>>;
  readonly migStrategy: 'none' | 'single' | 'mixed';
  readonly migGeometry: MigGeometry | null;
  /** Problems that make the node's GPU capacity unknowable; GPU placement is refused while there are any. */
  readonly problems: readonly string[];
  /** Inconsistencies Tessera resolved (and how), worth a log line and a metric but not a refusal. */
  readonly warnings: readonly string[];
  readonly usable: boolean;
}

/** In precedence order: the first reader that recognises the node decides its mode. */
const MODE_READERS: readonly ModeReader[] = [
  readFractionMode,
  readMigMixedMode,
  readMigSingleMode,
  readReplicaMode,
  // Before exclusive: GFD may label a VM node's GPU count, and a node with devices but no nvidia.com/gpu is a VM node.
  readVmDeviceMode,
  readExclusiveMode,
];

/**
 * Reads one Node object. Never throws. `accelerators` says which other allocatable resources are accelerator devices
 * (the policy's list; the built-in one without a policy).
 */
export function readNode(node: KubeNode, accelerators: AcceleratorNames = BUILT_IN_ACCELERATORS): NodeInventory {
  const found: Findings = { problems: [], warnings: [] };
  const name = node.metadata?.name ?? '';
  if (name === '') found.problems.push('node has no metadata.name');
  const facts = readNodeFacts(node, found, accelerators);
  const reading =
    MODE_READERS.reduce<ReturnType<ModeReader>>((r, read) => r ?? read(facts, found), null) ?? NO_GPU_MODE;

  const memoryPerGpu = facts.labelMemory ?? facts.catalog?.memoryMiB ?? 0;
  if (reading.mode !== 'none' && memoryPerGpu === 0 && (reading.mode === 'fraction' || reading.mode === 'mps')) {
    found.problems.push(
      `GPU memory unknown: no ${GFD.memory} label and model ${facts.model ?? '(none)'} is not in the catalog`,
    );
  }
  const topology = readTopology(
    label(node.metadata?.annotations ?? {}, GPU_TOPOLOGY),
    reading.physical,
    found.warnings,
  );
  const gpus: GpuInventory[] = [];
  for (let index = 0; index < reading.physical; index++) {
    const t = topology.get(index);
    gpus.push({
      index,
      memoryMiB: memoryPerGpu,
      numa: t?.numa ?? null,
      nvlink: t?.nvlink ?? null,
      mig: reading.layout[index] ?? [],
    });
  }
  return {
    name,
    labels: facts.labels,
    taints: node.spec?.taints ?? [],
    unschedulable: node.spec?.unschedulable === true,
    cpuMilli: facts.cpuMilli,
    memoryMiB: facts.memoryMiB,
    mode: reading.mode,
    model: facts.model,
    gpus,
    replicas: reading.replicas,
    gpuResource: reading.gpuResource,
    // The kubelet enforces device resources like GPU resources: fit counts both the same way.
    resources: { ...facts.resources, ...facts.devices },
    migStrategy: facts.migStrategy,
    migGeometry: reading.migGeometry,
    problems: found.problems,
    warnings: found.warnings,
    usable: found.problems.length === 0,
  };
}
