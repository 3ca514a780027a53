// GPU-equivalents held per tenant, kept incrementally from pod events so that a quota check is a lookup rather than
// a walk over every pod. Entries are recomputed when the policy revision or the namespace-to-tenant mapping changes.

import type { KubePod } from '../kube-objects.ts';
import { isLeaving } from '../pod-lifecycle.ts';
import type { Policy } from '../policy/model.ts';
import { equivalentsOfPod } from '../pools/equivalents.ts';

export interface TenantUsage {
  readonly equivalents: number;
  readonly pods: number;
}

interface Entry {
  tenant: string;
  equivalents: number;
}

export class TenantUsageIndex {
  private readonly pods = new Map<string, KubePod>();
  private readonly entries = new Map<string, Entry>();
  private readonly totals = new Map<string, { equivalents: number; pods: number }>();
  /** The policy the entries were computed under; null until the first usage() call. */
  private policy: Policy | null = null;
  private dirty = true;
  private readonly tenantOf: (namespace: string) => string | null;

  constructor(tenantOf: (namespace: string) => string | null) {
    this.tenantOf = tenantOf;
  }

  private key(pod: KubePod): string {
    return pod.metadata?.uid || `${pod.metadata?.namespace}/${pod.metadata?.name}`;
  }

  /** Call when any namespace's tenant label changes. */
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
    const equivalents = equivalentsOfPod(pod, policy);
    if (equivalents <= 0) return;
    this.entries.set(key, { tenant, equivalents });
    const t = this.totals.get(tenant) ?? { equivalents: 0, pods: 0 };
    t.equivalents += equivalents;
    t.pods++;
    this.totals.set(tenant, t);
  }

  private removeEntry(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    const t = this.totals.get(e.tenant);
    if (!t) return;
    t.equivalents -= e.equivalents;
    t.pods--;
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
    const t = this.totals.get(tenant) ?? { equivalents: 0, pods: 0 };
    const own = exceptUid === null ? undefined : this.entries.get(exceptUid);
    if (own && own.tenant === tenant) return { equivalents: t.equivalents - own.equivalents, pods: t.pods - 1 };
    return { equivalents: t.equivalents, pods: t.pods };
  }
}
