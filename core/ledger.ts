// The allocation ledger: every GPU reservation keyed by pod UID, with per-node aggregates kept incrementally so that
// fit reads usage in O(GPUs). Assumed entries (placed at bind, not yet seen bound by the informer) carry an expiry;
// time is always passed in. Removal is idempotent, like the scheduler framework's Unreserve.

import type { Allocation } from './allocation.ts';
import { vmCharge } from './kubevirt/launcher.ts';

/** Aggregated usage of one node. Read-only to everyone but the ledger. */
export class NodeUsage {
  cpuMilli = 0;
  memoryMiB = 0;
  pods = 0;
  readonly resources = new Map<string, number>();
  gpuMilli: number[] = [];
  gpuMemoryMiB: number[] = [];
  /** Per GPU: tenant -> number of sharing pods of that tenant on the GPU (fraction nodes). */
  gpuTenants: Map<string, number>[] = [];
  /** tenant -> number of sharing pods on the node (time-slicing and MPS share whole nodes' GPUs). */
  readonly nodeTenants = new Map<string, number>();
  /** Bumped on every change, so that callers can cache derived values. */
  generation = 0;

  private ensureGpu(index: number): void {
    while (this.gpuMilli.length <= index) {
      this.gpuMilli.push(0);
      this.gpuMemoryMiB.push(0);
      this.gpuTenants.push(new Map());
    }
  }

  apply(a: Allocation, sign: 1 | -1): void {
    this.cpuMilli += sign * a.cpuMilli;
    this.memoryMiB += sign * a.memoryMiB;
    this.pods += sign;
    for (const [r, n] of Object.entries(a.resources)) {
      const next = (this.resources.get(r) ?? 0) + sign * n;
      if (next === 0) this.resources.delete(r);
      else this.resources.set(r, next);
    }
    for (const g of a.gpus) {
      this.ensureGpu(g.index);
      this.gpuMilli[g.index]! += sign * g.milli;
      this.gpuMemoryMiB[g.index]! += sign * g.memoryMiB;
      if (a.sharing && a.tenant !== null) bump(this.gpuTenants[g.index]!, a.tenant, sign);
    }
    if (a.sharing && a.tenant !== null && a.gpus.length === 0) bump(this.nodeTenants, a.tenant, sign);
    this.generation++;
  }

  milliOn(index: number): number {
    return this.gpuMilli[index] ?? 0;
  }

  memoryOn(index: number): number {
    return this.gpuMemoryMiB[index] ?? 0;
  }

  /** A detached copy, for what-if questions (preemption) that must not touch the ledger. */
  copy(): NodeUsage {
    const c = new NodeUsage();
    c.cpuMilli = this.cpuMilli;
    c.memoryMiB = this.memoryMiB;
    c.pods = this.pods;
    for (const [k, v] of this.resources) c.resources.set(k, v);
    c.gpuMilli = [...this.gpuMilli];
    c.gpuMemoryMiB = [...this.gpuMemoryMiB];
    c.gpuTenants = this.gpuTenants.map((m) => new Map(m));
    for (const [k, v] of this.nodeTenants) c.nodeTenants.set(k, v);
    c.generation = this.generation;
    return c;
  }

  tenantsOn(index: number): ReadonlyMap<string, number> {
    return this.gpuTenants[index] ?? EMPTY;
  }
}

const EMPTY: ReadonlyMap<string, number> = new Map();

function bump(map: Map<string, number>, key: string, sign: 1 | -1): void {
  const next = (map.get(key) ?? 0) + sign;
  if (next <= 0) map.delete(key);
  else map.set(key, next);
}

export class Ledger {
  private readonly byUid = new Map<string, Allocation>();
  private readonly byNode = new Map<string, NodeUsage>();
  private readonly podsByNode = new Map<string, Set<string>>();
  private readonly tenantTotals = new Map<string, number>();
  /** tenant -> VM -> launcher pod UID -> equivalents: a VM's launcher pods count as the most one of them holds. */
  private readonly tenantVms = new Map<string, Map<string, Map<string, number>>>();
  /** UIDs of assumed allocations, so that expiry looks at those only. */
  private readonly assumed = new Set<string>();

  private countTenant(a: Allocation, sign: 1 | -1): void {
    if (a.tenant === null || !a.equivalents) return;
    if (a.vm !== null) {
      const vms = this.tenantVms.get(a.tenant) ?? new Map<string, Map<string, number>>();
      const members = vms.get(a.vm) ?? new Map<string, number>();
      if (sign === 1) members.set(a.uid, a.equivalents);
      else members.delete(a.uid);
      if (members.size > 0) vms.set(a.vm, members);
      else vms.delete(a.vm);
      if (vms.size > 0) this.tenantVms.set(a.tenant, vms);
      else this.tenantVms.delete(a.tenant);
      return;
    }
    const next = (this.tenantTotals.get(a.tenant) ?? 0) + sign * a.equivalents;
    if (Math.abs(next) < 1e-9) this.tenantTotals.delete(a.tenant);
    else this.tenantTotals.set(a.tenant, next);
  }

  /** GPU-equivalents held by a tenant's allocations (bound and assumed). */
  tenantEquivalents(tenant: string): number {
    let total = this.tenantTotals.get(tenant) ?? 0;
    for (const members of this.tenantVms.get(tenant)?.values() ?? []) total += vmCharge(members.values());
    return total;
  }

  /** What the launcher pods of a tenant's VM hold, except the pod with `exceptUid`. */
  vmEquivalents(tenant: string, vm: string, exceptUid: string): number {
    const members = this.tenantVms.get(tenant)?.get(vm);
    if (!members) return 0;
    return vmCharge([...members].filter(([uid]) => uid !== exceptUid).map(([, eq]) => eq));
  }

  /** Records an allocation, replacing any earlier one of the same pod. */
  add(allocation: Allocation): void {
    this.remove(allocation.uid);
    this.byUid.set(allocation.uid, allocation);
    let usage = this.byNode.get(allocation.node);
    if (!usage) {
      usage = new NodeUsage();
      this.byNode.set(allocation.node, usage);
    }
    usage.apply(allocation, 1);
    this.countTenant(allocation, 1);
    if (allocation.assumedUntil !== null) this.assumed.add(allocation.uid);
    let pods = this.podsByNode.get(allocation.node);
    if (!pods) {
      pods = new Set();
      this.podsByNode.set(allocation.node, pods);
    }
    pods.add(allocation.uid);
  }

  /** Forgets a pod's allocation; a no-op for an unknown UID. Returns what was removed. */
  remove(uid: string): Allocation | undefined {
    const existing = this.byUid.get(uid);
    if (!existing) return undefined;
    this.byUid.delete(uid);
    this.assumed.delete(uid);
    this.byNode.get(existing.node)?.apply(existing, -1);
    this.countTenant(existing, -1);
    this.podsByNode.get(existing.node)?.delete(uid);
    return existing;
  }

  get(uid: string): Allocation | undefined {
    return this.byUid.get(uid);
  }

  /** The node's usage. The object is created on first use and kept, so callers may hold on to it. */
  usage(node: string): NodeUsage {
    let usage = this.byNode.get(node);
    if (!usage) {
      usage = new NodeUsage();
      this.byNode.set(node, usage);
    }
    return usage;
  }

  allocationsOn(node: string): Allocation[] {
    const uids = this.podsByNode.get(node);
    if (!uids) return [];
    return [...uids].map((u) => this.byUid.get(u)!).sort((a, b) => (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0));
  }

  all(): IterableIterator<Allocation> {
    return this.byUid.values();
  }

  get size(): number {
    return this.byUid.size;
  }

  /** Drops assumed reservations whose time has passed; returns them so the caller can log and count. */
  expire(now: number): Allocation[] {
    const expired: Allocation[] = [];
    for (const uid of this.assumed) {
      const a = this.byUid.get(uid)!;
      if (a.assumedUntil !== null && a.assumedUntil <= now) expired.push(a);
    }
    for (const a of expired) this.remove(a.uid);
    return expired;
  }

  /** A copy whose changes do not touch this ledger (for what-if evaluation such as preemption). */
  clone(): Ledger {
    const copy = new Ledger();
    for (const a of this.byUid.values()) copy.add(a);
    return copy;
  }
}
