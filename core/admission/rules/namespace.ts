// The trust anchor of tenancy: a namespace's tessera.io/tenant label. Only policy admins and Tessera's own service
// accounts may set, change or remove it; otherwise a tenant relabels its way into another tenant's pools.

import type { KubeNamespace } from '../../kube-objects.ts';
import { TENANT_LABEL } from '../../well-known-names.ts';
import { tenantNamed } from '../../policy/model.ts';
import { BUILTIN, type CheckContext, type Violation } from '../check.ts';

export function namespaceViolations(ns: KubeNamespace, old: KubeNamespace | null, ctx: CheckContext): Violation[] {
  const now = ns.metadata?.labels?.[TENANT_LABEL];
  const before = old?.metadata?.labels?.[TENANT_LABEL];
  const out: Violation[] = [];
  if (now !== before && !ctx.admin && !ctx.system) {
    const what =
      before === undefined
        ? `set ${TENANT_LABEL}=${now}`
        : now === undefined
          ? `remove ${TENANT_LABEL}=${before}`
          : `change ${TENANT_LABEL} from ${before} to ${now}`;
    const admins =
      [...ctx.policy.admins.users, ...ctx.policy.admins.groups.map((g) => `group ${g}`)].join(', ') ||
      '(no admins in the policy)';
    out.push({
      rule: BUILTIN.tenancy,
      action: 'enforce',
      message: `${ctx.user.username ?? 'this user'} may not ${what} on namespace ${ns.metadata?.name ?? ''}; only platform admins (${admins}) may. Ask one of them`,
    });
  }
  if (now !== undefined && now !== before && !tenantNamed(ctx.policy, now)) {
    out.push({
      rule: BUILTIN.tenancy,
      action: 'warn',
      message: `tenant "${now}" is not defined in the policy, so pods in namespace ${ns.metadata?.name ?? ''} will get no GPUs until it is`,
    });
  }
  return out;
}
