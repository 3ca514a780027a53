// What one cluster can still give, per Tessera pool and GPU model, in GPU-equivalents (a whole GPU 1, a fraction f,
// a MIG instance its compute slices over the GPU's, a time-slice replica 1/replicas): the figure each worker's
// extender publishes and the fleet dispatcher reads. Computed from the extender's own inventory and ledger, so it is
// what Tessera itself would let a pod have.

import type { NodeInventory } from '../inventory/node-inventory.ts';
import type { NodeUsage } from '../ledger.ts';
import type { Policy } from '../policy/model.ts';
import { inPool } from '../scheduling/evaluate.ts';
import { NVIDIA_MIG_PREFIX } from '../well-known-names.ts';
import { poolRegion } from './region.ts';

export interface PoolCapacity {
  readonly pool: string;
  /** GFD's product name of the pool's nodes, or null when unknown. */
  readonly model: string | null;
  /** The region the pool is pinned to by its selector (null: not pinned). */
  readonly region: string | null;
  readonly nodes: number;
  /** GPU-equivalents on usable nodes, and what is not held by any pod. */
  readonly total: number;
  readonly free: number;
}

export interface ClusterCapacity {
  /** The cluster's name in the fleet (MultiKueueCluster name). */
  readonly cluster: string;
  /** The region the cluster is in (topology.kubernetes.io/region of its nodes), or null. */
  readonly region: string | null;
  readonly pools: readonly PoolCapacity[];
}

const round = (n: number): number => Math.round(n * 1000) / 1000;

/** A node's GPU-equivalents and the part no pod holds. */
export function nodeEquivalents(node: NodeInventory, usage: NodeUsage): { total: number; free: number } {
  if (!node.usable || node.unschedulable) return { total: 0, free: 0 };
  switch (node.mode) {
    case 'fraction': {
      const total = node.gpus.length;
      const held = node.gpus.reduce((sum, g) => sum + Math.min(1000, usage.milliOn(g.index)), 0) / 1000;
      return { total, free: round(total - held) };
    }
    case 'exclusive':
    case 'time-slicing':
    case 'mps': {
      const resource = node.gpuResource;
      if (resource === null) return { total: 0, free: 0 };
      const per = node.mode === 'exclusive' ? 1 : Math.max(1, node.replicas);
      const capacity = node.resources[resource] ?? 0;
      const used = usage.resources.get(resource) ?? 0;
      return { total: round(capacity / per), free: round(Math.max(0, capacity - used) / per) };
    }
    case 'mig': {
      const geometry = node.migGeometry;
      if (geometry === null) return { total: 0, free: 0 };
      let total = 0;
      let free = 0;
      for (const [resource, capacity] of Object.entries(node.resources)) {
        if (!resource.startsWith(NVIDIA_MIG_PREFIX)) continue;
        const profile = geometry.profiles.find((p) => p.name === resource.slice(NVIDIA_MIG_PREFIX.length));
        if (!profile) continue;
        const share = profile.computeSlices / geometry.computeSlices;
        total += capacity * share;
        free += Math.max(0, capacity - (usage.resources.get(resource) ?? 0)) * share;
      }
      return { total: round(total), free: round(free) };
    }
    default:
      return { total: 0, free: 0 };
  }
}

/** Capacity per pool and model over the nodes of the pool (a node in two pools counts in both). */
export function poolCapacity(
  policy: Policy,
  nodes: Iterable<NodeInventory>,
  usageOf: (node: string) => NodeUsage,
): PoolCapacity[] {
  const list = [...nodes];
  const out: PoolCapacity[] = [];
  for (const pool of policy.pools) {
    const byModel = new Map<string | null, { nodes: number; total: number; free: number }>();
    for (const node of list) {
      if (!inPool(node, pool)) continue;
      const e = nodeEquivalents(node, usageOf(node.name));
      const entry = byModel.get(node.model) ?? { nodes: 0, total: 0, free: 0 };
      entry.nodes++;
      entry.total += e.total;
      entry.free += e.free;
      byModel.set(node.model, entry);
    }
    for (const [model, e] of [...byModel].sort(([a], [b]) => String(a).localeCompare(String(b))))
      out.push({
        pool: pool.name,
        model,
        region: poolRegion(pool),
        nodes: e.nodes,
        total: round(e.total),
        free: round(e.free),
      });
  }
  return out;
}

/** Reads a published ClusterCapacity; anything malformed is a problem to report, never a crash. */
export function readClusterCapacity(
  text: string | undefined,
): { ok: true; capacity: ClusterCapacity } | { ok: false; problem: string } {
  if (text === undefined) return { ok: false, problem: 'no capacity published' };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return { ok: false, problem: `capacity is not JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
  const o = v as Partial<ClusterCapacity> | null;
  if (typeof o !== 'object' || o === null || typeof o.cluster !== 'string' || !Array.isArray(o.pools))
    return { ok: false, problem: 'capacity must be an object with cluster (string) and pools (list)' };
  const pools: PoolCapacity[] = [];
  for (const p of o.pools as unknown[]) {
    const q = p as Partial<PoolCapacity> | null;
    if (
      typeof q !== 'object' ||
      q === null ||
      typeof q.pool !== 'string' ||
      !Number.isFinite(q.total) ||
      !Number.isFinite(q.free) ||
      !Number.isFinite(q.nodes)
    )
      return { ok: false, problem: 'each pool needs pool (string), nodes, total and free (numbers)' };
    pools.push({
      pool: q.pool,
      model: typeof q.model === 'string' ? q.model : null,
      region: typeof q.region === 'string' ? q.region : null,
      nodes: q.nodes!,
      total: q.total!,
      free: q.free!,
    });
  }
  return { ok: true, capacity: { cluster: o.cluster, region: typeof o.region === 'string' ? o.region : null, pools } };
}
