// Whether a pod fits a node, and every way it could be placed there. Pure: it reads the node inventory, the node's
// usage from the ledger and the pod's demand, and returns placements or one stable reason.

import { migProfile } from './catalog/mig-geometry.ts';
import { modelMatches } from './catalog/gpu-models.ts';
import type { GpuShare } from './assignment.ts';
import type { PodDemand } from './demand.ts';
import { chooseGpuSets, setQuality } from './gpu-sets.ts';
import type { GpuInventory, NodeInventory } from './inventory/node-inventory.ts';
import type { NodeUsage } from './ledger.ts';
import { GPU_MILLI, NVIDIA_GPU, NVIDIA_GPU_SHARED, NVIDIA_MIG_PREFIX } from './well-known-names.ts';
import { reason, type Reason } from './reasons.ts';
import { memoryShareMilli } from './pools/memory-share.ts';

export interface FitContext {
  /** The tenant of the pod's namespace, or null. */
  readonly tenant: string | null;
  /** Tenants whose pods never share a GPU (fraction) or node (time-slicing, MPS) with another tenant's. */
  readonly isolatedTenants: ReadonlySet<string>;
}

export const OPEN_CONTEXT: FitContext = { tenant: null, isolatedTenants: new Set() };

export interface Placement {
  readonly node: string;
  /** GPUs and what is reserved on each (fraction nodes only). */
  readonly gpus: readonly GpuShare[];
  /** Device-plugin GPU resources the pod will hold. */
  readonly resources: Readonly<Record<string, number>>;
  readonly sharing: boolean;
  /** Topology quality of a multi-GPU set, 0..1 (1 for single-GPU and device-plugin placements). */
  readonly topology: number;
}

export type FitResult =
  | { readonly ok: true; readonly placements: readonly Placement[] }
  | { readonly ok: false; readonly reason: Reason };

const fail = (r: Reason): FitResult => ({ ok: false, reason: r });

/** Whether tenant isolation lets `tenant` share a GPU/node whose sharing pods belong to `present`. */
export function isolationAllows(ctx: FitContext, present: ReadonlyMap<string, number>): boolean {
  if (present.size === 0) return true;
  const own = ctx.tenant;
  for (const other of present.keys()) {
    if (other === own) continue;
    if (own === null || ctx.isolatedTenants.has(own) || ctx.isolatedTenants.has(other)) return false;
  }
  return true;
}

function cpuMemory(node: NodeInventory, usage: NodeUsage, demand: PodDemand): Reason | null {
  const freeCpu = node.cpuMilli - usage.cpuMilli;
  if (demand.cpuMilli > freeCpu)
    return reason(
      'InsufficientCpu',
      `pod needs ${demand.cpuMilli}m CPU, node has ${Math.max(0, freeCpu)}m free of ${node.cpuMilli}m`,
    );
  const freeMem = node.memoryMiB - usage.memoryMiB;
  if (demand.memoryMiB > freeMem)
    return reason(
      'InsufficientMemory',
      `pod needs ${demand.memoryMiB} MiB memory, node has ${Math.max(0, freeMem)} MiB free of ${node.memoryMiB} MiB`,
    );
  return null;
}

/** Compute (milli) and memory (MiB) a share takes on a GPU of this node. */
export function shareOn(
  gpu: GpuInventory,
  milliPerGpu: number,
  memoryMiB: number | null,
  memoryOnly: boolean,
): { milli: number; memoryMiB: number } {
  if (memoryOnly && memoryMiB !== null && gpu.memoryMiB > 0) {
    return { milli: memoryShareMilli(memoryMiB, gpu.memoryMiB, milliPerGpu), memoryMiB };
  }
  if (milliPerGpu >= 1000) return { milli: 1000, memoryMiB: memoryMiB ?? gpu.memoryMiB };
  // Proportional memory rounds down, so that four quarter-GPU pods always fit one GPU.
  return { milli: milliPerGpu, memoryMiB: memoryMiB ?? Math.floor((milliPerGpu * gpu.memoryMiB) / 1000) };
}

function fitFraction(node: NodeInventory, usage: NodeUsage, demand: PodDemand, ctx: FitContext): FitResult {
  const f = demand.fraction;
  if (f === null)
    return fail(
      reason(
        'ModeMismatch',
        `node ${node.name} shares GPUs through ${GPU_MILLI}; the pod asks for ${Object.keys(demand.gpuResources).join(', ')}`,
      ),
    );
  if (f.gpus > node.gpus.length)
    return fail(reason('TooManyGpus', `pod asks for ${f.gpus} GPUs, node has ${node.gpus.length}`));
  if (f.gpus > 1 || (f.milliPerGpu >= 1000 && f.memoryMiB === null))
    return fitWholeFraction(node, usage, demand, f.gpus);
  const placements: Placement[] = [];
  let bestCompute = -1;
  let bestMemory = -1;
  let blockedByTenant = false;
  let memoryTooLarge = true;
  let needMilli = 0;
  let needMemory = 0;
  for (const gpu of node.gpus) {
    const share = shareOn(gpu, f.milliPerGpu, f.memoryMiB, f.memoryOnly);
    needMilli = share.milli;
    needMemory = share.memoryMiB;
    if (share.memoryMiB <= gpu.memoryMiB) memoryTooLarge = false;
    const freeMilli = 1000 - usage.milliOn(gpu.index);
    const freeMemory = gpu.memoryMiB - usage.memoryOn(gpu.index);
    if (share.milli > freeMilli || share.memoryMiB > freeMemory) {
      if (freeMilli > bestCompute || (freeMilli === bestCompute && freeMemory > bestMemory)) {
        bestCompute = freeMilli;
        bestMemory = freeMemory;
      }
      continue;
    }
    if (share.milli < 1000 && !isolationAllows(ctx, usage.tenantsOn(gpu.index))) {
      blockedByTenant = true;
      continue;
    }
    placements.push({
      node: node.name,
      gpus: [{ index: gpu.index, milli: share.milli, memoryMiB: share.memoryMiB }],
      resources: {},
      sharing: share.milli < 1000,
      topology: 1,
    });
  }
  if (placements.length > 0) return { ok: true, placements };
  if (memoryTooLarge)
    return fail(
      reason(
        'GpuMemoryTooLarge',
        `pod needs ${needMemory} MiB of GPU memory on one GPU; ${node.model ?? 'this'} GPUs have ${node.gpus[0]?.memoryMiB ?? 0} MiB`,
      ),
    );
  if (blockedByTenant)
    return fail(
      reason(
        'TenantIsolation',
        `GPUs with room for ${needMilli}m hold pods of another tenant, and tenant ${ctx.tenant ?? '(none)'} may not share with them`,
      ),
    );
  const detail = `pod needs ${needMilli}m compute and ${needMemory} MiB on one GPU; the roomiest GPU has ${Math.max(0, bestCompute)}m and ${Math.max(0, bestMemory)} MiB free`;
  // A memory-only share's compute follows its memory, so memory is what it lacks whenever memory is short.
  const memoryShort = f.memoryOnly ? bestMemory < needMemory : bestCompute >= needMilli;
  return fail(reason(memoryShort ? 'GpuMemory' : 'GpuCompute', detail));
}

function fitWholeFraction(node: NodeInventory, usage: NodeUsage, demand: PodDemand, count: number): FitResult {
  const free = node.gpus.filter((g) => usage.milliOn(g.index) === 0 && usage.memoryOn(g.index) === 0);
  if (free.length < count)
    return fail(
      reason('GpusExhausted', `pod needs ${count} whole GPU(s), node has ${free.length} free of ${node.gpus.length}`),
    );
  const choice = chooseGpuSets(node.gpus, free, count, demand.topology);
  if (choice.sets.length === 0) {
    const kind = demand.topology === 'numa' ? 'NUMA node' : 'NVLink island';
    if (choice.impossible)
      return fail(
        reason(
          'TopologyImpossible',
          `pod requires ${count} GPUs in one ${kind}; no ${kind} of node ${node.name} has that many GPUs`,
        ),
      );
    return fail(
      reason(
        'TopologyUnsatisfiable',
        `pod requires ${count} GPUs in one ${kind}; ${free.length} GPUs are free but no ${kind} has ${count} of them`,
      ),
    );
  }
  const placements = choice.sets.map(
    (set): Placement => ({
      node: node.name,
      gpus: set.map((g) => ({ index: g.index, milli: 1000, memoryMiB: g.memoryMiB })),
      resources: {},
      sharing: false,
      topology: setQuality(set),
    }),
  );
  return { ok: true, placements };
}

function fitDevicePlugin(node: NodeInventory, usage: NodeUsage, demand: PodDemand, ctx: FitContext): FitResult {
  if (demand.fraction !== null) {
    return fail(
      reason(
        'ModeMismatch',
        `pod asks for ${GPU_MILLI} but node ${node.name} is a ${node.mode} node (not labelled tessera.io/sharing=fraction)`,
      ),
    );
  }
  const sharingNode = node.mode === 'time-slicing' || node.mode === 'mps';
  for (const [resource, want] of Object.entries({ ...demand.gpuResources, ...demand.devices })) {
    const capacity = node.resources[resource] ?? 0;
    const free = capacity - (usage.resources.get(resource) ?? 0);
    if (resource.startsWith(NVIDIA_MIG_PREFIX)) {
      const profile = resource.slice(NVIDIA_MIG_PREFIX.length);
      if (node.mode !== 'mig')
        return fail(
          reason(
            'ModeMismatch',
            `pod asks for MIG ${profile} but node ${node.name} is a ${node.mode} node, not MIG-partitioned`,
          ),
        );
      if (capacity === 0) {
        const offered = Object.keys(node.resources)
          .filter((r) => r.startsWith(NVIDIA_MIG_PREFIX))
          .map((r) => r.slice(NVIDIA_MIG_PREFIX.length));
        const exists = node.migGeometry !== null && migProfile(node.migGeometry, profile) !== undefined;
        const hint = exists
          ? `it offers ${offered.join(', ') || 'no MIG instances'}`
          : `${profile} is not a profile of ${node.model ?? 'its'} GPUs`;
        return fail(reason('MigProfileAbsent', `node ${node.name} has no ${profile} instances; ${hint}`));
      }
      if (want > free)
        return fail(
          reason(
            'MigProfileExhausted',
            `pod needs ${want} x ${profile}, node has ${Math.max(0, free)} free of ${capacity}`,
          ),
        );
      continue;
    }
    if (capacity === 0) {
      return fail(
        reason(
          'ModeMismatch',
          `pod asks for ${resource} but node ${node.name} (${node.mode}) offers ${Object.keys(node.resources).join(', ') || 'no GPU resources'}`,
        ),
      );
    }
    if (want > free) {
      const code =
        sharingNode && resource === node.gpuResource
          ? 'ReplicasExhausted'
          : resource === NVIDIA_GPU && node.mode === 'mig'
            ? 'MigProfileExhausted'
            : 'GpusExhausted';
      return fail(reason(code, `pod needs ${want} ${resource}, node has ${Math.max(0, free)} free of ${capacity}`));
    }
  }
  if (node.mode === 'mig' && node.migStrategy === 'single' && demand.intent.migProfile !== null) {
    const offered = node.gpus[0]?.mig[0]?.profile;
    if (offered !== undefined && offered !== demand.intent.migProfile) {
      return fail(
        reason(
          'MigProfileAbsent',
          `pod wants MIG profile ${demand.intent.migProfile}; node ${node.name} is partitioned into ${offered}`,
        ),
      );
    }
  }
  if (node.mode === 'mps' && demand.intent.memoryMiB !== null && node.gpus[0] !== undefined) {
    const replicas = demand.gpuResources[node.gpuResource ?? NVIDIA_GPU] ?? 1;
    const perReplica = Math.floor(node.gpus[0].memoryMiB / node.replicas);
    if (demand.intent.memoryMiB > perReplica * replicas) {
      return fail(
        reason(
          'GpuMemoryTooLarge',
          `pod needs ${demand.intent.memoryMiB} MiB of GPU memory; ${replicas} MPS replica(s) here carry ${perReplica * replicas} MiB`,
        ),
      );
    }
  }
  const sharing =
    sharingNode && (demand.gpuResources[NVIDIA_GPU] ?? 0) + (demand.gpuResources[NVIDIA_GPU_SHARED] ?? 0) > 0;
  if (sharing && !isolationAllows(ctx, usage.nodeTenants)) {
    return fail(
      reason(
        'TenantIsolation',
        `node ${node.name} shares its GPUs by ${node.mode} with pods of another tenant, and tenant ${ctx.tenant ?? '(none)'} may not share with them`,
      ),
    );
  }
  return {
    ok: true,
    placements: [
      { node: node.name, gpus: [], resources: { ...demand.gpuResources, ...demand.devices }, sharing, topology: 1 },
    ],
  };
}

/** Every feasible placement of the pod on the node, or the reason there is none. */
export function fit(
  node: NodeInventory,
  usage: NodeUsage,
  demand: PodDemand,
  ctx: FitContext = OPEN_CONTEXT,
): FitResult {
  const wantsGpu =
    demand.fraction !== null || Object.keys(demand.gpuResources).length > 0 || Object.keys(demand.devices).length > 0;
  if (wantsGpu) {
    if (!node.usable) return fail(reason('NodeUnusable', node.problems.join('; ')));
    if (node.mode === 'none' || (node.gpus.length === 0 && node.mode !== 'mig' && node.mode !== 'vm-devices'))
      return fail(reason('NoGpus', `node ${node.name} has no GPUs that Tessera can account`));
    if (demand.models !== null && !demand.models.some((m) => node.model !== null && modelMatches(node.model, m))) {
      return fail(
        reason(
          'ModelMismatch',
          `pod allows ${demand.models.join(' | ')}, node ${node.name} has ${node.model ?? 'an unknown model'}`,
        ),
      );
    }
  }
  const resources = cpuMemory(node, usage, demand);
  if (resources !== null) return fail(resources);
  if (!wantsGpu)
    return { ok: true, placements: [{ node: node.name, gpus: [], resources: {}, sharing: false, topology: 1 }] };
  return node.mode === 'fraction' ? fitFraction(node, usage, demand, ctx) : fitDevicePlugin(node, usage, demand, ctx);
}
