// The tenant's GPU quota, in GPU-equivalents over its non-terminated pods. This check judges on the informer's pods;
// the webhook then reserves the pod's weight on an API object with optimistic concurrency (quota-reservations.ts), so
// that concurrent admissions across replicas cannot overrun it. The extender checks the quota again at bind.

import { BUILTIN, type CheckContext, type PodCheck, type PodSubject } from '../check.ts';
import { formatEquivalents, withinQuota } from '../../pools/equivalents.ts';
import { sharedAlreadyHeld } from '../../dra/quota-parts.ts';
import { vmOfPod } from '../../kubevirt/launcher.ts';
import type { TenantUsage } from '../tenant-usage.ts';

/** What a pod under admission asks of its tenant's quota. */
export interface QuotaNeed {
  readonly tenant: string;
  readonly quota: number;
  /** The pod's UID (set by the API server before validating admission) and `namespace/name`. */
  readonly uid: string;
  readonly pod: string;
  /** GPU-equivalents this pod adds (a ResourceClaim it shares with the tenant's running pods is already counted). */
  readonly equivalents: number;
  /** What the informer's pods of the tenant hold, this pod excluded. */
  readonly held: TenantUsage;
}

/** The quota need of a pod CREATE in a tenant with a quota, or null when quota does not apply or it adds nothing. */
export function quotaNeedOf(s: PodSubject, ctx: CheckContext): QuotaNeed | null {
  if (!s.gpu || s.template || ctx.operation !== 'CREATE' || !s.tenant || s.tenant.quotaGpus === null || !s.decision?.ok)
    return null;
  const uid = s.pod.metadata?.uid ?? '';
  const held = ctx.view.tenantUsage(s.tenant.name, ctx.policy, uid || null);
  // A ResourceClaim this pod shares with running pods of the tenant is already counted.
  let equivalents =
    s.decision.plan.equivalents - sharedAlreadyHeld(s.dra, s.namespace, s.decision.pool, held.sharedClaims);
  // A migration target carries the devices its VM's source pod already holds: only the difference is new.
  const vm = vmOfPod(s.pod);
  if (vm !== null) equivalents = Math.max(0, equivalents - (held.vms?.get(vm) ?? 0));
  // A pod that adds nothing (a migration target no larger than its source) never worsens a tenant's standing.
  if (equivalents <= 1e-9) return null;
  return {
    tenant: s.tenant.name,
    quota: s.tenant.quotaGpus,
    uid,
    pod: `${s.namespace}/${s.pod.metadata?.name ?? ''}`,
    equivalents,
    held,
  };
}

/** The denial for a pod that does not fit its tenant's quota, given what is held (pods and reservations). */
export function quotaExceededMessage(need: QuotaNeed, held: number, holders: string): string {
  return `tenant ${need.tenant} has a quota of ${need.quota} GPU-equivalents; ${formatEquivalents(held)} are held by ${holders} and this pod needs ${formatEquivalents(need.equivalents)}. Wait for pods to finish, delete some, or ask for a smaller share`;
}

export const quotaCheck: PodCheck = (s, ctx) => {
  const need = quotaNeedOf(s, ctx);
  if (need === null || withinQuota(need.held.equivalents, need.equivalents, need.quota)) return [];
  return [
    {
      rule: BUILTIN.quota,
      action: 'enforce',
      message: quotaExceededMessage(need, need.held.equivalents, `${need.held.pods} pod(s)`),
    },
  ];
};
