// Which pods to preempt on one node so that a higher-priority pod really fits there: on a fraction node, the fewest
// victims that free a placement on one GPU (not just enough milli summed over the node); on device-plugin nodes, the
// fewest that free the instances or replicas the pod asks for; on DRA nodes, the fewest whose ResourceClaims, once
// released, leave devices for the pod's claims (kube-scheduler's DRA plugin allocates them). Victims have a lower priority than the preemptor and
// belong to its tenant or to a tenant its policy may preempt. kube-scheduler proposes victims by node-level resources
// only; the extender's preempt verb replaces them with these.

import type { Allocation } from '../allocation.ts';
import { fit } from '../fit.ts';
import type { NodeInventory } from '../inventory/node-inventory.ts';
import type { NodeUsage } from '../ledger.ts';
import { tenantNamed } from '../policy/model.ts';
import { inPool, type PodContext } from './evaluate.ts';
import { draVerdict } from '../dra/verdict.ts';
import type { SchedulingState } from './state.ts';

export interface Preemptor {
  readonly ctx: PodContext;
  readonly priority: number;
}

/** Whether `victim` may be preempted by the preemptor: lower priority, and a tenant the policy lets it preempt. */
export function mayPreempt(state: SchedulingState, preemptor: Preemptor, victim: Allocation): boolean {
  if (victim.assumedUntil !== null || victim.priority >= preemptor.priority) return false;
  const own = preemptor.ctx.tenant;
  if (victim.tenant === own) return true;
  if (state.policy === null) return true;
  if (own === null) return false;
  const allowed = tenantNamed(state.policy, own)?.mayPreempt ?? [];
  return allowed.includes('*') || (victim.tenant !== null && allowed.includes(victim.tenant));
}

function fitsWithout(
  state: SchedulingState,
  node: NodeInventory,
  usage: NodeUsage,
  p: Preemptor,
  victims: readonly Allocation[],
): boolean {
  const after = usage.copy();
  for (const v of victims) after.apply(v, -1);
  return fit(node, after, p.ctx.demand, state.fitContext(p.ctx.tenant)).ok;
}

/** How much of what the pod asks for a victim gives back, for ordering: milli on `gpu`, or its matching resources. */
function relief(v: Allocation, p: Preemptor, gpu: number | null): number {
  if (gpu !== null) return v.gpus.filter((g) => g.index === gpu).reduce((s, g) => s + g.milli, 0);
  const asked = [...Object.keys(p.ctx.demand.gpuResources), ...Object.keys(p.ctx.demand.devices)];
  return asked.reduce((s, r) => s + (v.resources[r] ?? 0), 0);
}

const byPriority = (a: Allocation, b: Allocation) => a.priority - b.priority || a.uid.localeCompare(b.uid);

/** Greedy in `order` until the pod fits, then reprieve whoever is not needed, highest priority first. */
function coverThenReprieve(
  fits: (victims: readonly Allocation[]) => boolean,
  order: readonly Allocation[],
): Allocation[] | null {
  const chosen: Allocation[] = [];
  for (const v of order) {
    if (fits(chosen)) break;
    chosen.push(v);
  }
  if (!fits(chosen)) return null;
  for (const v of [...chosen].sort((a, b) => byPriority(b, a))) {
    const without = chosen.filter((c) => c !== v);
    if (fits(without)) chosen.splice(chosen.indexOf(v), 1);
  }
  return chosen;
}

function cost(victims: readonly Allocation[]): [number, number, number] {
  const milli = victims.reduce((s, v) => s + v.gpus.reduce((m, g) => m + g.milli, 0), 0);
  return [victims.length, victims.reduce((s, v) => s + v.priority, 0), milli];
}

function cheaper(a: readonly Allocation[], b: readonly Allocation[]): boolean {
  const [x, y] = [cost(a), cost(b)];
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! < y[i]!;
  return false;
}

/**
 * The victims on `nodeName` that let the preemptor fit, fewest first; [] when it fits already, null when no allowed
 * set of victims can make room (the node is then no candidate).
 */
/**
 * On a node whose GPUs a DRA driver publishes, whether the pod fits once `victims` are gone: their CPU and memory back,
 * and the devices of the claims only they hold released. Null when DRA is not how this pod meets this node.
 */
function draFits(
  state: SchedulingState,
  node: NodeInventory,
  usage: NodeUsage,
  p: Preemptor,
): ((victims: readonly Allocation[]) => boolean) | null {
  const ctx = state.fitContext(p.ctx.tenant);
  const tenantOf = (ns: string) => state.tenantOf(ns);
  const ask = p.ctx.dra ?? null;
  if (draVerdict(node, usage, p.ctx.demand, ask, state.dra, ctx, tenantOf) === null) return null;
  return (victims) => {
    const after = usage.copy();
    for (const v of victims) after.apply(v, -1);
    const released = state.dra.releasedBy(new Set(victims.map((v) => v.uid)));
    return draVerdict(node, after, p.ctx.demand, ask, state.dra, ctx, tenantOf, released)?.feasible === true;
  };
}

/** Devices on `node` that evicting `v` alone would release (its claims that no other pod uses). */
function draRelief(state: SchedulingState, node: string, v: Allocation): number {
  const released = state.dra.releasedBy(new Set([v.uid]));
  return state.dra
    .claimsOn(node)
    .filter((c) => released.has(c.claim))
    .reduce((n, c) => n + c.devices.length, 0);
}

export function chooseVictims(
  state: SchedulingState,
  preemptor: Preemptor,
  nodeName: string,
  /** Pods kube-scheduler can evict: those it sees bound to the node. */
  evictable: (victim: Allocation) => boolean = () => true,
): Allocation[] | null {
  const node = state.nodes.get(nodeName);
  if (!node || (preemptor.ctx.pool !== null && !inPool(node, preemptor.ctx.pool))) return null;
  const usage = state.ledger.usage(nodeName);
  const onDra = draFits(state, node, usage, preemptor);
  const fits = onDra ?? ((victims: readonly Allocation[]) => fitsWithout(state, node, usage, preemptor, victims));
  if (fits([])) return [];
  const eligible = state.ledger
    .allocationsOn(nodeName)
    .filter((a) => mayPreempt(state, preemptor, a) && evictable(a))
    .sort(byPriority);
  if (!fits(eligible)) return null;
  if (onDra !== null) {
    // DRA pools: victims by the devices their claims hold here, most first.
    const relief = new Map(eligible.map((a) => [a.uid, draRelief(state, nodeName, a)]));
    const order = [...eligible].sort((a, b) => relief.get(b.uid)! - relief.get(a.uid)! || byPriority(a, b));
    return coverThenReprieve(fits, order);
  }
  // One try per GPU on fraction nodes (room on that GPU first), one for the whole node otherwise.
  const targets: (number | null)[] = node.mode === 'fraction' ? node.gpus.map((g) => g.index) : [null];
  let best: Allocation[] | null = null;
  for (const gpu of targets) {
    const order = [...eligible].sort(
      (a, b) => relief(b, preemptor, gpu) - relief(a, preemptor, gpu) || byPriority(a, b),
    );
    const victims = coverThenReprieve(fits, order);
    if (victims !== null && (best === null || cheaper(victims, best))) best = victims;
  }
  return best;
}
