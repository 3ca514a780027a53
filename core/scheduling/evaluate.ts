// One pod against many nodes: the shared code of filter, prioritize, bind, preempt and `tessera explain`. Per node it
// gives a verdict (feasible with a score and the placement bind would commit, or a reason), cached per node and pod
// shape until the node, its usage or the cluster model changes, so that kube-scheduler's repeated calls cost lookups.

import { formatEquivalents, podEquivalents, withinQuota } from '../pools/equivalents.ts';
import type { GpuShare } from '../assignment.ts';
import { newAllocation } from '../allocation.ts';
import { parseDemand, wantsGpu, type PodDemand } from '../demand.ts';
import { fit, type Placement } from '../fit.ts';
import type { NodeInventory } from '../inventory/node-inventory.ts';
import type { NodeUsage } from '../ledger.ts';
import type { KubePod } from '../kube-objects.ts';
import { GPU_ENFORCEMENT_LABEL, NODE_AGENT_LABEL, NODE_AGENT_SERVING, POOL_ANNOTATION } from '../well-known-names.ts';
import { poolNamed, tenantNamed, type Pool } from '../policy/model.ts';
import { reason, type Reason } from '../reasons.ts';
import type { ScoringContext, Strategy } from '../scoring/strategy.ts';
import type { SchedulingState } from './state.ts';
import { draAskOf, type DraAsk } from '../dra/ask.ts';
import { podDraEquivalents, readPodDra } from '../dra/pod-claims.ts';
import { draVerdict } from '../dra/verdict.ts';
import { vmOfPod } from '../kubevirt/launcher.ts';

export interface NodeVerdict {
  readonly node: string;
  readonly feasible: boolean;
  /** Raw strategy score (higher is better); 0 when infeasible. */
  readonly score: number;
  readonly placement: Placement | null;
  readonly reason: Reason | null;
}

export interface PodContext {
  readonly demand: PodDemand;
  readonly tenant: string | null;
  readonly pool: Pool | null;
  /** spec.priority: nominations of pods at or above it hold room against this pod. */
  readonly priority: number;
  readonly key: string;
  /** What the pod's DRA claims and DRA-backed extended resources ask for (null: none). */
  readonly dra?: DraAsk | null;
  /** GPU-equivalents of the pod's own DRA claims (shared ResourceClaims are the webhook's to count). */
  readonly draEquivalents?: number;
  /** The KubeVirt VM of a launcher pod (core/kubevirt/launcher.ts), or null. */
  readonly vm?: string | null;
}

export type PodContextResult =
  | { readonly ok: true; readonly pod: PodContext }
  | { readonly ok: false; readonly reason: Reason };

/** Reads the pod once per request (the CycleState habit). */
export function podContext(state: SchedulingState, pod: KubePod): PodContextResult {
  const parsed = parseDemand(pod, state.policy?.accelerators);
  if (!parsed.ok)
    return {
      ok: false,
      reason: reason(
        'InvalidRequest',
        `the pod's GPU request is invalid: ${parsed.error.field}: ${parsed.error.message}`,
      ),
    };
  const demand = parsed.demand;
  const namespace = pod.metadata?.namespace ?? '';
  const tenant = state.tenantOf(namespace);
  const poolName = pod.metadata?.annotations?.[POOL_ANNOTATION];
  const pool = poolName && state.policy ? (poolNamed(state.policy, poolName) ?? null) : null;
  const priority = pod.spec?.priority ?? 0;
  const dra = state.policy ? draAskOf(pod, state.policy, state.dra) : null;
  const draEquivalents =
    dra !== null && state.policy
      ? podDraEquivalents(readPodDra(pod, namespace, state.policy, state.dra), namespace, pool).own
      : 0;
  const key = JSON.stringify([
    demand.cpuMilli,
    demand.memoryMiB,
    demand.gpuResources,
    demand.devices,
    demand.fraction,
    demand.models,
    demand.topology,
    demand.intent.migProfile,
    demand.intent.memoryMiB,
    tenant,
    pool?.name ?? null,
    priority,
    dra,
  ]);
  return { ok: true, pod: { demand, tenant, pool, priority, key, dra, draEquivalents, vm: vmOfPod(pod) } };
}

export function inPool(node: NodeInventory, pool: Pool): boolean {
  return Object.entries(pool.nodeSelector).every(([k, v]) => node.labels[k] === v);
}

interface CacheEntry {
  readonly stateVersion: number;
  /** The node's usage object (stable for the node's life) and its generation when the verdict was made. */
  readonly usage: NodeUsage;
  readonly generation: number;
  readonly verdict: NodeVerdict;
}

/** Verdicts kept at most: about 300 bytes each, so ~30 MiB. One shape asked of a whole 15,000-node fleet is 15,000. */
export const VERDICT_CACHE_ENTRIES = 100_000;
const VERDICT_CACHE_SHAPES = 256;

/**
 * Verdicts by pod shape, then node; an entry dies with any change to the node's usage (ledger generation) or to the
 * cluster model (state version). Looking the shape up once per request keeps the per-node cost to one small lookup.
 * Bounded in shapes and in entries, least recently asked shapes dropped first: a trace with many shapes over thousands
 * of nodes would otherwise keep hundreds of MiB of verdicts that nothing asks for again (bench:live at 6,065 nodes).
 */
export class VerdictCache {
  // Map order is recency: a shape asked again moves to the end.
  private readonly byShape = new Map<string, Map<string, CacheEntry>>();

  private readonly maxEntries: number;
  private readonly maxShapes: number;

  constructor(maxEntries = VERDICT_CACHE_ENTRIES, maxShapes = VERDICT_CACHE_SHAPES) {
    this.maxEntries = maxEntries;
    this.maxShapes = maxShapes;
  }

  shape(key: string): Map<string, CacheEntry> {
    let m = this.byShape.get(key);
    if (m) this.byShape.delete(key);
    else m = new Map();
    // Settled here, once per request, over at most maxShapes maps; a request adds at most its names beyond the bound.
    let entries = m.size;
    for (const other of this.byShape.values()) entries += other.size;
    for (const [oldest, other] of this.byShape) {
      if (entries <= this.maxEntries && this.byShape.size < this.maxShapes) break;
      this.byShape.delete(oldest);
      entries -= other.size;
    }
    this.byShape.set(key, m);
    return m;
  }

  /** Verdicts held now. */
  get size(): number {
    let n = 0;
    for (const m of this.byShape.values()) n += m.size;
    return n;
  }
}

/**
 * The node's usage as this pod must see it: with the room held for pods that kube-scheduler nominated to the node after
 * preempting for them, when they rank at or above this pod (as kube-scheduler's own filters count them).
 */
function usageWithNominations(state: SchedulingState, ctx: PodContext, node: NodeInventory): NodeUsage {
  const usage = state.ledger.usage(node.name);
  const held = state.nominationsOn(node.name).filter((n) => n.uid !== ctx.demand.uid && n.priority >= ctx.priority);
  if (held.length === 0) return usage;
  const after = usage.copy();
  for (const n of held) {
    const room = fit(node, after, n.demand, state.fitContext(n.tenant));
    const placement = room.ok ? room.placements[0] : undefined;
    if (placement)
      after.apply(newAllocation({ pod: n.demand, tenant: n.tenant, node: node.name, holding: placement }), 1);
  }
  return after;
}

function verdictOf(
  state: SchedulingState,
  ctx: PodContext,
  name: string,
  node: NodeInventory,
  strategy: Strategy,
  scoring: ScoringContext,
): NodeVerdict {
  if (ctx.pool && !inPool(node, ctx.pool)) {
    return {
      node: name,
      feasible: false,
      score: 0,
      placement: null,
      reason: reason(
        'NodeNotInPool',
        `node ${name} is not in pool ${ctx.pool.name} (${Object.entries(ctx.pool.nodeSelector)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ')})`,
      ),
    };
  }
  const delivery = ctx.pool ? deliveryReason(name, node, ctx.pool) : null;
  if (delivery) return { node: name, feasible: false, score: 0, placement: null, reason: delivery };
  const usage = usageWithNominations(state, ctx, node);
  const onDra = draVerdict(node, usage, ctx.demand, ctx.dra ?? null, state.dra, state.fitContext(ctx.tenant), (ns) =>
    state.tenantOf(ns),
  );
  if (onDra !== null)
    return onDra.feasible
      ? { node: name, feasible: true, score: onDra.score, placement: onDra.placement, reason: null }
      : { node: name, feasible: false, score: 0, placement: null, reason: onDra.reason };
  const result = fit(node, usage, ctx.demand, state.fitContext(ctx.tenant));
  if (!result.ok) return { node: name, feasible: false, score: 0, placement: null, reason: result.reason };
  const scored = strategy.choose({ node, usage, demand: ctx.demand, placements: result.placements, context: scoring });
  return { node: name, feasible: true, score: scored.score, placement: scored.placement, reason: null };
}

/**
 * A pool served by the node agent (policy `delivery`) needs nodes where the agent serves, and, when it requires
 * enforcement, nodes whose agent reports it (node labels tessera.io/node-agent and tessera.io/gpu-enforcement).
 */
function deliveryReason(name: string, node: NodeInventory, pool: Pool): Reason | null {
  if (pool.delivery === null) return null;
  if (node.labels[NODE_AGENT_LABEL] !== NODE_AGENT_SERVING)
    return reason(
      'NodeAgentMissing',
      `pool ${pool.name} delivers GPUs through Tessera's node agent, but node ${name} has no ${NODE_AGENT_LABEL}=${NODE_AGENT_SERVING} label; run the node agent there (docs/node-agent.md)`,
    );
  const required = pool.delivery.enforcement;
  if (required === null) return null;
  const has = node.labels[GPU_ENFORCEMENT_LABEL] ?? 'none';
  const ok = required === 'any' ? has === 'hami-core' || has === 'mps' : has === required;
  return ok
    ? null
    : reason(
        'EnforcementMissing',
        `pool ${pool.name} requires ${required === 'any' ? 'hami-core or mps' : required} enforcement, but node ${name} reports ${GPU_ENFORCEMENT_LABEL}=${has}`,
      );
}

function unknownNode(name: string): NodeVerdict {
  return {
    node: name,
    feasible: false,
    score: 0,
    placement: null,
    reason: reason('UnknownNode', `node ${name} is not in the extender's cache (yet)`),
  };
}

/** One node's verdict, fresh (bind uses this: no cache). */
export function evaluateNode(
  state: SchedulingState,
  ctx: PodContext,
  name: string,
  strategy: Strategy,
  scoring: ScoringContext,
): NodeVerdict {
  const node = state.nodes.get(name);
  return node ? verdictOf(state, ctx, name, node, strategy, scoring) : unknownNode(name);
}

export function evaluateNodes(
  state: SchedulingState,
  ctx: PodContext,
  names: readonly string[],
  strategy: Strategy,
  scoring: ScoringContext,
  cache: VerdictCache | null,
): NodeVerdict[] {
  const entries = cache?.shape(ctx.key) ?? null;
  const version = state.version;
  const out: NodeVerdict[] = new Array(names.length);
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    // The hot path: one lookup, and the entry knows the usage object whose generation it must match.
    const hit = entries?.get(name);
    if (hit && hit.stateVersion === version && hit.generation === hit.usage.generation) {
      out[i] = hit.verdict;
      continue;
    }
    const node = state.nodes.get(name);
    if (!node) {
      out[i] = unknownNode(name);
      continue;
    }
    const usage = state.ledger.usage(name);
    const verdict = verdictOf(state, ctx, name, node, strategy, scoring);
    entries?.set(name, { stateVersion: version, usage, generation: usage.generation, verdict });
    out[i] = verdict;
  }
  return out;
}

/**
 * The tenant quota check at bind: what the tenant holds (bound and assumed, this pod excluded) plus this pod, as placed
 * on `gpus` when known (a memory-only share weighs what it takes there).
 */
export function quotaReason(
  state: SchedulingState,
  ctx: PodContext,
  gpus: readonly GpuShare[] | null = null,
): Reason | null {
  const policy = state.policy;
  if (policy === null || ctx.tenant === null || (!wantsGpu(ctx.demand) && !ctx.draEquivalents)) return null;
  const tenant = tenantNamed(policy, ctx.tenant);
  if (!tenant || tenant.quotaGpus === null) return null;
  const vm = ctx.vm ?? null;
  const uid = ctx.demand.uid;
  const whole = podEquivalents(ctx.demand, policy, gpus) + (ctx.draEquivalents ?? 0);
  // Held by the tenant without this pod; a launcher pod adds only what its VM's other launcher pod does not hold.
  const existing = state.ledger.get(uid);
  const total = state.ledger.tenantEquivalents(ctx.tenant);
  const own =
    existing === undefined
      ? 0
      : existing.vm === null
        ? existing.equivalents
        : state.ledger.vmEquivalents(ctx.tenant, existing.vm, '') -
          state.ledger.vmEquivalents(ctx.tenant, existing.vm, uid);
  const held = total - own;
  const mine = vm === null ? whole : Math.max(0, whole - state.ledger.vmEquivalents(ctx.tenant, vm, uid));
  if (mine <= 1e-9 || withinQuota(held, mine, tenant.quotaGpus)) return null;
  return reason(
    'QuotaExceeded',
    `tenant ${ctx.tenant} holds ${formatEquivalents(held)} of its ${tenant.quotaGpus} GPU-equivalents; this pod needs ${formatEquivalents(mine)}`,
  );
}
