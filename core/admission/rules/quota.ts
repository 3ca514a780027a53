// The tenant's GPU quota, in GPU-equivalents over its non-terminated pods. Admission can race (two pods admitted at
// once, Capsule#49), so the extender checks the quota again at bind, its single commit point.

import { BUILTIN, type PodCheck } from '../check.ts';
import { formatEquivalents, withinQuota } from '../../pools/equivalents.ts';
import { sharedAlreadyHeld } from '../../dra/quota-parts.ts';
import { vmOfPod } from '../../kubevirt/launcher.ts';

export const quotaCheck: PodCheck = (s, ctx) => {
  if (!s.gpu || s.template || ctx.operation !== 'CREATE' || !s.tenant || s.tenant.quotaGpus === null || !s.decision?.ok)
    return [];
  const quota = s.tenant.quotaGpus;
  const used = ctx.view.tenantUsage(s.tenant.name, ctx.policy, s.pod.metadata?.uid ?? null);
  // A ResourceClaim this pod shares with running pods of the tenant is already counted.
  let mine = s.decision.plan.equivalents - sharedAlreadyHeld(s.dra, s.namespace, s.decision.pool, used.sharedClaims);
  // A migration target carries the devices its VM's source pod already holds: only the difference is new.
  const vm = vmOfPod(s.pod);
  if (vm !== null) mine = Math.max(0, mine - (used.vms?.get(vm) ?? 0));
  // A pod that adds nothing (a migration target no larger than its source) never worsens a tenant's standing.
  if (mine <= 1e-9 || withinQuota(used.equivalents, mine, quota)) return [];
  return [
    {
      rule: BUILTIN.quota,
      action: 'enforce',
      message: `tenant ${s.tenant.name} has a quota of ${quota} GPU-equivalents; ${formatEquivalents(used.equivalents)} are held by ${used.pods} pod(s) and this pod needs ${formatEquivalents(mine)}. Wait for pods to finish, delete some, or ask for a smaller share`,
    },
  ];
};
