// GPU-equivalents held per tenant, kept incrementally from pod events so that a quota check is a lookup rather than
// a walk over every pod. Entries are recomputed when the policy revision or the namespace-to-tenant mapping changes.
// A ResourceClaim that several pods name (DRA) counts once, while any pod that names it is not terminated; the launcher
// pods of one KubeVirt VM (a live migration's source and target) count as the most either holds (core/kubevirt).

import type { KubePod } from '../kube-objects.ts';
import { isLeaving } from '../pod-lifecycle.ts';
import type { Policy } from '../policy/model.ts';
import type { DraLookup } from '../dra/lookup.ts';
import { podQuotaParts } from '../dra/quota-parts.ts';
import { vmCharge, vmOfPod } from '../kubevirt/launcher.ts';

export interface TenantUsage {
  readonly equivalents: number;
  readonly pods: number;
  /** Shared ResourceClaims (`namespace/name`) already counted in `equivalents`. */
  readonly sharedClaims?: ReadonlySet<string>;
  /** VMs (`namespace/VMI uid`) with live launcher pods, and what they already hold. */
  readonly vms?: ReadonlyMap<string, number>;
}

interface Entry {
  tenant: string;
  equivalents: number;
  /** The VM of a launcher pod: its equivalents count in the VM's group, not on their own. */
  vm: string | null;
  shared: ReadonlyMap<string, number>;
}

interface Totals {
  equivalents: number;
  pods: number;
  /** Shared claim -> its equivalents and how many counted pods name it. */
  shared: Map<string, { equivalents: number; refs: number }>;
  /** VM -> its launcher pods' equivalents by pod key. */
  vms: Map<string, Map<string, number>>;
}

export class TenantUsageIndex {
  private readonly pods = new Map<string, KubePod>();
  private readonly entries = new Map<string, Entry>();
  private readonly totals = new Map<string, Totals>();
  /** The policy the entries were computed under; null until the first usage() call. */
  private policy: Policy | null = null;
  private dirty = true;
  private readonly tenantOf: (namespace: string) => string | null;
  private readonly dra: DraLookup | undefined;

  constructor(tenantOf: (namespace: string) => string | null, dra?: DraLookup) {
    this.tenantOf = tenantOf;
    this.dra = dra;
  }

  private key(pod: KubePod): string {
    return pod.metadata?.uid || `${pod.metadata?.namespace}/${pod.metadata?.name}`;
  }

  /** Call when any namespace's tenant label changes (or DRA objects the pods name change). */
  invalidate(): void {
    this.dirty = true;
  }

  upsertPod(pod: KubePod): void {
    const key = this.key(pod);
    this.removeEntry(key);
    if (isLeaving(pod)) {
      this.pods.delete(key);
      return;
    }
    this.pods.set(key, pod);
    if (!this.dirty) this.addEntry(key, pod, this.policy);
  }

  removePod(pod: KubePod): void {
    const key = this.key(pod);
    this.removeEntry(key);
    this.pods.delete(key);
  }

  private addEntry(key: string, pod: KubePod, policy: Policy | null): void {
    if (policy === null) return;
    const tenant = this.tenantOf(pod.metadata?.namespace ?? '');
    if (tenant === null) return;
    const { own, shared } = podQuotaParts(pod, policy, this.dra);
    if (own <= 0 && shared.size === 0) return;
    const vm = vmOfPod(pod);
    this.entries.set(key, { tenant, equivalents: own, vm, shared });
    let t = this.totals.get(tenant);
    if (!t) {
      t = { equivalents: 0, pods: 0, shared: new Map(), vms: new Map() };
      this.totals.set(tenant, t);
    }
    if (vm === null) t.equivalents += own;
    else {
      const members = t.vms.get(vm) ?? new Map<string, number>();
      members.set(key, own);
      t.vms.set(vm, members);
    }
    t.pods++;
    for (const [claim, eq] of shared) {
      const s = t.shared.get(claim);
      if (s) s.refs++;
      else t.shared.set(claim, { equivalents: eq, refs: 1 });
    }
  }

  private removeEntry(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    const t = this.totals.get(e.tenant);
    if (!t) return;
    if (e.vm === null) t.equivalents -= e.equivalents;
    else {
      const members = t.vms.get(e.vm);
      members?.delete(key);
      if (members?.size === 0) t.vms.delete(e.vm);
    }
    t.pods--;
    for (const claim of e.shared.keys()) {
      const s = t.shared.get(claim);
      if (s && --s.refs <= 0) t.shared.delete(claim);
    }
    if (t.pods <= 0) this.totals.delete(e.tenant);
  }

  usage(tenant: string, policy: Policy, exceptUid: string | null): TenantUsage {
    if (this.dirty || this.policy?.revision !== policy.revision) {
      this.policy = policy;
      this.entries.clear();
      this.totals.clear();
      for (const [key, pod] of this.pods) this.addEntry(key, pod, policy);
      this.dirty = false;
    }
    const t = this.totals.get(tenant);
    if (!t) return { equivalents: 0, pods: 0 };
    const own = exceptUid === null ? undefined : this.entries.get(exceptUid);
    const except = own && own.tenant === tenant ? own : undefined;
    let equivalents = t.equivalents - (except && except.vm === null ? except.equivalents : 0);
    const vms = new Map<string, number>();
    for (const [vm, members] of t.vms) {
      const held = vmCharge([...members].filter(([k]) => k !== exceptUid).map(([, eq]) => eq));
      equivalents += held;
      vms.set(vm, held);
    }
    const sharedClaims = new Set<string>();
    for (const [claim, s] of t.shared) {
      if (except?.shared.has(claim) && s.refs === 1) continue;
      equivalents += s.equivalents;
      sharedClaims.add(claim);
    }
    return {
      equivalents,
      pods: t.pods - (except ? 1 : 0),
      ...(sharedClaims.size > 0 ? { sharedClaims } : {}),
      ...(vms.size > 0 ? { vms } : {}),
    };
  }
}
