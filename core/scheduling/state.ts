// The scheduler-side model of the cluster: node inventories, the allocation ledger, namespace tenants and the policy.
// Fed by the extender's informers (or a snapshot file for `tessera explain`); no I/O of its own. Assumed placements
// from bind stay until the informer shows the pod bound (confirmed) or gone, or their time runs out.

import { readNode, type NodeInventory } from '../inventory/node-inventory.ts';
import type { KubeNamespace, KubeNode, KubePod } from '../kube-objects.ts';
import type { Allocation } from '../allocation.ts';
import { Ledger } from '../ledger.ts';
import { POOL_ANNOTATION, TENANT_LABEL } from '../well-known-names.ts';
import { isolatedTenants, type Policy } from '../policy/model.ts';
import type { FitContext } from '../fit.ts';
import { isTerminated } from '../pod-lifecycle.ts';
import { parseDemand, wantsGpu, type PodDemand } from '../demand.ts';
import { pendingReason } from './pending.ts';
import { allocationOfPod } from './pod-allocation.ts';
import { DraCluster } from '../dra/cluster.ts';
import { podDraEquivalents, readPodDra } from '../dra/pod-claims.ts';

/** A pending pod that kube-scheduler nominated to a node after preempting for it: the room it waits for. */
export interface Nomination {
  readonly uid: string;
  readonly node: string;
  readonly priority: number;
  readonly tenant: string | null;
  readonly demand: PodDemand;
}

export class SchedulingState {
  readonly nodes = new Map<string, NodeInventory>();
  /** The Node objects as last applied, to read again when the policy changes which resources are devices. */
  private readonly nodeObjects = new Map<string, KubeNode>();
  readonly ledger = new Ledger();
  private readonly tenants = new Map<string, string | null>();
  private isolated: ReadonlySet<string> = new Set();
  private currentPolicy: Policy | null = null;
  /** Bumped whenever something that fit or scoring reads changes outside the ledger (nodes, tenants, policy). */
  version = 0;
  /** DRA: DeviceClasses, claims, templates and ResourceSlices (inventory and what is taken). */
  readonly dra = new DraCluster(() => {
    this.version++;
  });
  /** Problems found while rebuilding allocations from pods (surfaced as logs and metrics by the caller). */
  readonly problems = new Map<string, string>();
  private readonly nominations = new Map<string, Nomination>();
  /** Unbound GPU pods: uid -> why they wait. */
  private readonly waiting = new Map<string, string>();
  private readonly nominatedNodes = new Map<string, Nomination[]>();
  /** Live pods (not finished) as last applied, to apply again when their tenant or the policy changes. */
  private readonly pods = new Map<string, KubePod>();

  get policy(): Policy | null {
    return this.currentPolicy;
  }

  setPolicy(policy: Policy | null): void {
    const changed = policy !== this.currentPolicy;
    this.currentPolicy = policy;
    this.isolated = policy === null ? new Set() : isolatedTenants(policy);
    this.version++;
    // Which node resources are accelerator devices depends on the policy (deviceResources, acceleratorResources), and
    // what a pod holds against its tenant's quota too (pools, replicas): read and count again under this one.
    if (changed) {
      for (const node of [...this.nodeObjects.values()]) this.upsertNode(node);
      this.rederive(() => true);
    }
  }

  upsertNode(node: KubeNode): NodeInventory {
    const inventory = readNode(node, this.currentPolicy?.accelerators);
    const previous = this.nodes.get(inventory.name);
    this.nodeObjects.set(inventory.name, node);
    // A kubelet's periodic status (heartbeat times) changes nothing fit or scoring reads: the node keeps its inventory,
    // and the verdicts cached for every node stay valid (1,000 nodes post one every few minutes each).
    if (previous !== undefined && sameInventory(previous, inventory)) return previous;
    this.nodes.set(inventory.name, inventory);
    this.version++;
    return inventory;
  }

  removeNode(name: string): void {
    this.nodes.delete(name);
    this.nodeObjects.delete(name);
    this.version++;
  }

  upsertNamespace(ns: KubeNamespace): void {
    const name = ns.metadata?.name ?? '';
    const tenant = ns.metadata?.labels?.[TENANT_LABEL] || null;
    if (this.tenants.get(name) !== tenant) {
      this.tenants.set(name, tenant);
      this.version++;
      this.rederive((p) => p.metadata?.namespace === name);
    }
  }

  removeNamespace(name: string): void {
    this.tenants.delete(name);
    this.version++;
    this.rederive((p) => p.metadata?.namespace === name);
  }

  /** Applies the live pods that `which` selects again: what they hold depends on their tenant and the policy too. */
  private rederive(which: (pod: KubePod) => boolean): void {
    for (const pod of [...this.pods.values()]) if (which(pod)) this.upsertPod(pod);
  }

  /** Physical GPUs per model, for the scoring context's model pressure. */
  capacityByModel(): Map<string, number> {
    const capacity = new Map<string, number>();
    for (const n of this.nodes.values())
      if (n.model !== null && n.gpus.length > 0) capacity.set(n.model, (capacity.get(n.model) ?? 0) + n.gpus.length);
    return capacity;
  }

  tenantOf(namespace: string): string | null {
    return this.tenants.get(namespace) ?? null;
  }

  fitContext(tenant: string | null): FitContext {
    return { tenant, isolatedTenants: this.isolated };
  }

  nominationsOn(node: string): readonly Nomination[] {
    return this.nominatedNodes.get(node) ?? NO_NOMINATIONS;
  }

  private setNomination(uid: string, next: Nomination | null): void {
    const prev = this.nominations.get(uid);
    if (prev === undefined && next === null) return;
    if (prev !== undefined && next !== null && prev.node === next.node && prev.priority === next.priority) return;
    if (prev) {
      const rest = this.nominationsOn(prev.node).filter((n) => n.uid !== uid);
      if (rest.length > 0) this.nominatedNodes.set(prev.node, rest);
      else this.nominatedNodes.delete(prev.node);
      this.nominations.delete(uid);
    }
    if (next) {
      this.nominations.set(uid, next);
      this.nominatedNodes.set(next.node, [...this.nominationsOn(next.node), next]);
    }
    this.version++;
  }

  /** GPU pods waiting to be scheduled, by reason. */
  pendingByReason(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const r of this.waiting.values()) counts.set(r, (counts.get(r) ?? 0) + 1);
    return counts;
  }

  private trackPending(pod: KubePod, uid: string): void {
    const parsed =
      pod.spec?.nodeName || isTerminated(pod) || pod.metadata?.deletionTimestamp
        ? null
        : parseDemand(pod, this.currentPolicy?.accelerators);
    if (parsed?.ok && wantsGpu(parsed.demand)) this.waiting.set(uid, pendingReason(pod));
    else this.waiting.delete(uid);
  }

  private trackNomination(pod: KubePod, uid: string): void {
    const node = pod.status?.nominatedNodeName;
    if (!node || pod.spec?.nodeName || isTerminated(pod) || pod.metadata?.deletionTimestamp) {
      this.setNomination(uid, null);
      return;
    }
    const parsed = parseDemand(pod, this.currentPolicy?.accelerators);
    if (!parsed.ok || !wantsGpu(parsed.demand)) {
      this.setNomination(uid, null);
      return;
    }
    const tenant = this.tenantOf(pod.metadata?.namespace ?? '');
    this.setNomination(uid, { uid, node, priority: pod.spec?.priority ?? 0, tenant, demand: parsed.demand });
  }

  /** Applies a pod as the informer reports it. */
  upsertPod(pod: KubePod): void {
    const uid = pod.metadata?.uid ?? '';
    if (uid === '') return;
    this.trackNomination(pod, uid);
    this.trackPending(pod, uid);
    if (isTerminated(pod)) {
      // Finished pods free their GPUs now.
      this.removePod(uid);
      return;
    }
    this.pods.set(uid, pod);
    // Terminating pods keep their GPUs until they are gone.
    if (pod.metadata?.deletionTimestamp) return;
    const node = pod.spec?.nodeName;
    const { allocation, problem } = allocationOfPod(
      pod,
      node ? this.nodes.get(node) : undefined,
      this.tenantOf(pod.metadata?.namespace ?? ''),
      this.currentPolicy,
    );
    if (problem !== null) this.problems.set(uid, problem);
    else this.problems.delete(uid);
    if (allocation !== null) {
      const own = this.draEquivalents(pod);
      if (own > 0) {
        this.ledger.add({ ...allocation, equivalents: allocation.equivalents + own });
        return;
      }
    }
    if (allocation === null) {
      // Not bound yet: an assumed placement from our own bind must survive until the binding shows up.
      const existing = this.ledger.get(uid);
      if (existing && existing.assumedUntil === null) this.ledger.remove(uid);
      return;
    }
    this.ledger.add(allocation);
  }

  /** A pod's own DRA claims and DRA-backed extended resources, in GPU-equivalents (shared claims: the webhook's). */
  private draEquivalents(pod: KubePod): number {
    if (this.currentPolicy === null) return 0;
    const namespace = pod.metadata?.namespace ?? '';
    const dra = readPodDra(pod, namespace, this.currentPolicy, this.dra);
    if (!dra.gpu) return 0;
    const pool = this.currentPolicy.pools.find((p) => p.name === pod.metadata?.annotations?.[POOL_ANNOTATION]);
    return podDraEquivalents(dra, namespace, pool ?? null).own;
  }

  removePod(uid: string): void {
    this.pods.delete(uid);
    this.setNomination(uid, null);
    this.waiting.delete(uid);
    this.ledger.remove(uid);
    this.problems.delete(uid);
  }

  /** Records a placement made at bind, before the informer sees it. */
  assume(allocation: Allocation): void {
    this.ledger.add(allocation);
  }

  /** Drops assumed placements whose time has passed; returns them. */
  expire(now: number): Allocation[] {
    return this.ledger.expire(now);
  }
}

const NO_NOMINATIONS: readonly Nomination[] = [];

/** Inventories read from two versions of a node say the same (they are plain data). */
function sameInventory(a: NodeInventory, b: NodeInventory): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
