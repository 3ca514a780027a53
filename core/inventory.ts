// A GPU node as Tessera sees it, read from what GFD, the device plugin, the MIG manager and Tessera's own capacity
// controller publish. Reading never throws: a node with missing or contradictory labels carries its problems and is
// marked unusable for GPU work, so filter can name the reason instead of crashing or guessing.

import { lookupModel, canonicalModelName } from './catalog/gpu-models.ts';
import { MIG_PROFILE_PATTERN, type MigGeometry } from './catalog/mig-geometry.ts';
import { reconstructLayout, type MigInstance } from './catalog/mig-layout.ts';
import type { KubeNode, Taint } from './kube-objects.ts';
import { GFD, GPU_MILLI, GPU_TOPOLOGY, NVIDIA_GPU, NVIDIA_GPU_SHARED, NVIDIA_MIG_PREFIX, SHARING_LABEL } from './well-known-names.ts';
import { cpuMilli, memoryMiB, parseQuantity } from './quantity.ts';

export type NodeMode = 'none' | 'exclusive' | 'time-slicing' | 'mps' | 'mig' | 'fraction';

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
  /** Device-plugin extended resources the kubelet will enforce (nvidia.com/gpu, nvidia.com/mig-*, ...). */
  readonly resources: Readonly<Record<string, number>>;
  readonly migStrategy: 'none' | 'single' | 'mixed';
  readonly migGeometry: MigGeometry | null;
  /** Problems that make the node's GPU capacity unknowable; GPU placement is refused while there are any. */
  readonly problems: readonly string[];
  /** Inconsistencies Tessera resolved (and how), worth a log line and a metric but not a refusal. */
  readonly warnings: readonly string[];
  readonly usable: boolean;
}

interface TopologyEntry {
  index: number;
  numa?: number;
  nvlink?: string;
}

function label(labels: Record<string, string>, key: string): string | undefined {
  const value = labels[key];
  return value === undefined || value === '' ? undefined : value;
}

function positiveInt(text: string | undefined): number | null {
  if (text === undefined || !/^\d+$/.test(text)) return null;
  const n = Number(text);
  return n > 0 ? n : null;
}

function readResources(node: KubeNode, problems: string[]): Record<string, number> {
  const allocatable = node.status?.allocatable ?? node.status?.capacity ?? {};
  const resources: Record<string, number> = {};
  for (const [key, raw] of Object.entries(allocatable)) {
    if (!(key === NVIDIA_GPU || key === NVIDIA_GPU_SHARED || key === GPU_MILLI || key.startsWith(NVIDIA_MIG_PREFIX))) continue;
    try {
      resources[key] = Math.floor(parseQuantity(raw));
    } catch {
      problems.push(`status.allocatable["${key}"] = ${JSON.stringify(raw)} is not a quantity`);
    }
  }
  return resources;
}

function readTopology(raw: string | undefined, count: number, warnings: string[]): Map<number, TopologyEntry> {
  const entries = new Map<number, TopologyEntry>();
  if (raw === undefined) return entries;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    warnings.push(`annotation ${GPU_TOPOLOGY} is not JSON; expected {"gpus":[{"index":0,"numa":0,"nvlink":"a"}]} (topology ignored)`);
    return entries;
  }
  const gpus = (parsed as { gpus?: unknown })?.gpus;
  if (!Array.isArray(gpus)) {
    warnings.push(`annotation ${GPU_TOPOLOGY} has no "gpus" array (topology ignored)`);
    return entries;
  }
  for (const item of gpus as unknown[]) {
    const e = item as Partial<TopologyEntry> | null;
    const index = e?.index;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= count) {
      warnings.push(`annotation ${GPU_TOPOLOGY} names GPU index ${JSON.stringify(index)}, but the node has GPUs 0..${count - 1} (entry ignored)`);
      continue;
    }
    const entry: TopologyEntry = { index };
    if (typeof e?.numa === 'number' && Number.isInteger(e.numa)) entry.numa = e.numa;
    if (typeof e?.nvlink === 'string' && e.nvlink !== '') entry.nvlink = e.nvlink;
    entries.set(index, entry);
  }
  return entries;
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

/** Reads one Node object. Never throws. */
export function readNode(node: KubeNode): NodeInventory {
  const problems: string[] = [];
  const warnings: string[] = [];
  const labels = node.metadata?.labels ?? {};
  const name = node.metadata?.name ?? '';
  if (name === '') problems.push('node has no metadata.name');
  const allocatable = node.status?.allocatable ?? node.status?.capacity ?? {};
  let cpu = 0;
  let memory = 0;
  try {
    cpu = allocatable.cpu === undefined ? 0 : cpuMilli(allocatable.cpu);
    memory = allocatable.memory === undefined ? 0 : memoryMiB(allocatable.memory);
  } catch (e) {
    problems.push(`status.allocatable cpu/memory unreadable: ${e instanceof Error ? e.message : String(e)}`);
  }
  const resources = readResources(node, problems);
  const product = label(labels, GFD.product);
  const model = product === undefined ? null : canonicalModelName(product);
  const catalog = product === undefined ? null : lookupModel(product);
  const migStrategy = (label(labels, GFD.migStrategy) ?? 'none') as string;
  const sharing = label(labels, GFD.sharingStrategy) ?? 'none';
  const fraction = label(labels, SHARING_LABEL) === 'fraction';
  const counts = migCounts(labels);
  const hasMigResources = Object.keys(resources).some((k) => k.startsWith(NVIDIA_MIG_PREFIX) && resources[k]! > 0);
  const labelCount = positiveInt(label(labels, GFD.count));
  const labelMemory = positiveInt(label(labels, GFD.memory));

  let mode: NodeMode = 'none';
  let replicas = 1;
  let gpuResource: string | null = null;
  let physical = 0;
  let migGeometry: MigGeometry | null = null;
  let layout: (readonly MigInstance[])[] = [];
  const strategy: NodeInventory['migStrategy'] = migStrategy === 'single' || migStrategy === 'mixed' ? migStrategy : 'none';
  if (migStrategy !== 'none' && strategy === 'none') problems.push(`label ${GFD.migStrategy}=${migStrategy} is not none, single or mixed`);

  if (fraction) {
    mode = 'fraction';
    gpuResource = GPU_MILLI;
    if (labelCount === null) problems.push(`fraction node has no valid ${GFD.count} label, so Tessera cannot tell how many GPUs to share`);
    physical = labelCount ?? 0;
    if (strategy !== 'none' && (Object.keys(counts).length > 0 || hasMigResources)) {
      problems.push(`node is labelled ${SHARING_LABEL}=fraction but its GPUs are MIG-partitioned; remove one of the two`);
    }
    if (sharing !== 'none') problems.push(`node is labelled ${SHARING_LABEL}=fraction but the device plugin shares its GPUs (${GFD.sharingStrategy}=${sharing}); use one sharing mechanism`);
    const advertised = resources[GPU_MILLI];
    if (advertised !== undefined && labelCount !== null && advertised !== labelCount * 1000) {
      warnings.push(`allocatable ${GPU_MILLI}=${advertised} does not match ${labelCount} GPU(s) x 1000 yet (capacity controller pending); accounting uses the labels`);
    }
  } else if (strategy === 'mixed' && (Object.keys(counts).length > 0 || hasMigResources)) {
    mode = 'mig';
    migGeometry = catalog?.mig ?? null;
    if (migGeometry === null) problems.push(`GPU model ${product ?? '(no ' + GFD.product + ' label)'} has no MIG geometry in Tessera's catalog`);
    for (const [key, value] of Object.entries(resources)) {
      if (!key.startsWith(NVIDIA_MIG_PREFIX)) continue;
      const profile = key.slice(NVIDIA_MIG_PREFIX.length);
      if (counts[profile] !== undefined && counts[profile] !== value) {
        warnings.push(`label nvidia.com/mig-${profile}.count=${counts[profile]} disagrees with allocatable ${key}=${value}; accounting uses allocatable`);
      }
    }
    const layoutCounts: Record<string, number> = {};
    for (const [key, value] of Object.entries(resources)) if (key.startsWith(NVIDIA_MIG_PREFIX) && value > 0) layoutCounts[key.slice(NVIDIA_MIG_PREFIX.length)] = value;
    physical = labelCount ?? 0;
    if (migGeometry !== null) {
      if (physical === 0) {
        // GFD gives no physical count under mixed on some versions: assume the fewest GPUs that can hold the instances.
        const slices = Object.entries(layoutCounts).reduce((sum, [p, n]) => sum + n * (migGeometry!.profiles.find((x) => x.name === p)?.memorySlices ?? 0), 0);
        physical = Math.max(1, Math.ceil(slices / migGeometry.memorySlices));
      }
      const rebuilt = reconstructLayout(migGeometry, physical, layoutCounts);
      if (rebuilt.problem !== null) problems.push(rebuilt.problem);
      layout = rebuilt.gpus.map((g) => [...g]);
    }
    if ((resources[NVIDIA_GPU] ?? 0) > 0) gpuResource = NVIDIA_GPU;
  } else if (strategy === 'single') {
    mode = 'mig';
    gpuResource = NVIDIA_GPU;
    migGeometry = catalog?.mig ?? null;
    const profile = product === undefined ? undefined : /-MIG-(\d+g\.\d+gb(?:\+me)?)$/i.exec(product.replace(/-SHARED$/i, ''))?.[1];
    if (product !== undefined && /-MIG-INVALID$/i.test(product)) problems.push('GFD reports an invalid MIG configuration (gpu.product ends in -MIG-INVALID)');
    else if (profile === undefined) problems.push(`mig.strategy=single but ${GFD.product} names no MIG profile`);
    if (migGeometry === null) problems.push(`GPU model ${model ?? '(unknown)'} has no MIG geometry in Tessera's catalog`);
    const devices = resources[NVIDIA_GPU] ?? labelCount ?? 0;
    const perGpu = profile === undefined || migGeometry === null ? 0 : (migGeometry.profiles.find((p) => p.name === profile)?.maxInstances ?? 0);
    if (profile !== undefined && migGeometry !== null && perGpu === 0) problems.push(`MIG profile ${profile} does not exist on ${model} GPUs`);
    physical = perGpu > 0 ? Math.ceil(devices / perGpu) : 0;
    if (profile !== undefined && migGeometry !== null && perGpu > 0) {
      const rebuilt = reconstructLayout(migGeometry, physical, { [profile]: devices });
      if (rebuilt.problem !== null) problems.push(rebuilt.problem);
      layout = rebuilt.gpus.map((g) => [...g]);
    }
  } else if (sharing === 'time-slicing' || sharing === 'mps') {
    mode = sharing;
    const r = positiveInt(label(labels, GFD.replicas));
    if (r === null) problems.push(`${GFD.sharingStrategy}=${sharing} but ${GFD.replicas} is missing or not a positive integer`);
    replicas = r ?? 1;
    gpuResource = (resources[NVIDIA_GPU_SHARED] ?? 0) > 0 ? NVIDIA_GPU_SHARED : NVIDIA_GPU;
    const advertised = resources[gpuResource] ?? 0;
    physical = labelCount ?? (replicas > 0 ? Math.floor(advertised / replicas) : 0);
    if (labelCount !== null && r !== null && advertised !== labelCount * r) {
      warnings.push(`allocatable ${gpuResource}=${advertised} is not ${labelCount} GPU(s) x ${r} replicas; accounting uses allocatable`);
    }
  } else if ((resources[NVIDIA_GPU] ?? 0) > 0 || labelCount !== null) {
    mode = 'exclusive';
    gpuResource = NVIDIA_GPU;
    if (sharing !== 'none') warnings.push(`unknown ${GFD.sharingStrategy}=${sharing}; treating GPUs as exclusive`);
    physical = resources[NVIDIA_GPU] ?? labelCount ?? 0;
    if (resources[NVIDIA_GPU] === undefined) problems.push(`node has ${GFD.count}=${labelCount} but no allocatable ${NVIDIA_GPU}; the device plugin is not serving it`);
  }

  const memoryPerGpu = labelMemory ?? catalog?.memoryMiB ?? 0;
  if (mode !== 'none' && memoryPerGpu === 0 && (mode === 'fraction' || mode === 'mps')) {
    problems.push(`GPU memory unknown: no ${GFD.memory} label and model ${model ?? '(none)'} is not in the catalog`);
  }
  const topology = readTopology(label(node.metadata?.annotations ?? {}, GPU_TOPOLOGY), physical, warnings);
  const gpus: GpuInventory[] = [];
  for (let index = 0; index < physical; index++) {
    const t = topology.get(index);
    gpus.push({ index, memoryMiB: memoryPerGpu, numa: t?.numa ?? null, nvlink: t?.nvlink ?? null, mig: layout[index] ?? [] });
  }
  return {
    name,
    labels,
    taints: node.spec?.taints ?? [],
    unschedulable: node.spec?.unschedulable === true,
    cpuMilli: cpu,
    memoryMiB: memory,
    mode,
    model,
    gpus,
    replicas,
    gpuResource,
    resources,
    migStrategy: strategy,
    migGeometry,
    problems,
    warnings,
    usable: problems.length === 0,
  };
}
