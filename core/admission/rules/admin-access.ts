// The namespace label resource.kubernetes.io/admin-access lets ResourceClaims in the namespace ask for adminAccess,
// which reaches devices that other pods use (Kubernetes requires the label since DRAAdminAccess went GA in 1.36). It
// is guarded like tessera.io/tenant: only platform admins and Tessera's own service accounts set, change or remove it.

import type { KubeNamespace } from '../../kube-objects.ts';
import { BUILTIN, type CheckContext, type Violation } from '../check.ts';

export const ADMIN_ACCESS_LABEL = 'resource.kubernetes.io/admin-access';

export function adminAccessLabelViolations(
  ns: KubeNamespace,
  old: KubeNamespace | null,
  ctx: CheckContext,
): Violation[] {
  const now = ns.metadata?.labels?.[ADMIN_ACCESS_LABEL];
  const before = old?.metadata?.labels?.[ADMIN_ACCESS_LABEL];
  if (now === before || ctx.admin || ctx.system) return [];
  const what =
    before === undefined
      ? `set ${ADMIN_ACCESS_LABEL}=${now}`
      : now === undefined
        ? `remove ${ADMIN_ACCESS_LABEL}=${before}`
        : `change ${ADMIN_ACCESS_LABEL} from ${before} to ${now}`;
  const admins =
    [...ctx.policy.admins.users, ...ctx.policy.admins.groups.map((g) => `group ${g}`)].join(', ') ||
    '(no admins in the policy)';
  return [
    {
      rule: BUILTIN.tenancy,
      action: 'enforce',
      message: `${ctx.user.username ?? 'this user'} may not ${what} on namespace ${ns.metadata?.name ?? ''}: the label lets ResourceClaims with adminAccess reach devices other tenants' pods use; only platform admins (${admins}) may set it. Ask one of them`,
    },
  ];
}
