// DRA, no side door around tenancy and quota: GPU claims in pods (spec.resourceClaims, by claim or template name),
// extended resources that a DeviceClass backs with DRA, and ResourceClaims and ResourceClaimTemplates at their own
// admission. A GPU request must name a DeviceClass of one of the tenant's pools, may not ask for adminAccess or for
// every device of a node; namespaces without a tenant get no GPU claims. The pod's pool, pinning, quota and
// maxGpusPerPod follow from its decision (core/dra/decision.ts) like any GPU pod's.

import { claimSizeProblems, gpuRequestProblems, poolClasses, requestsEquivalents } from '../../dra/claim-policy.ts';
import { asksForGpus, readClaimSpec } from '../../dra/claim-requests.ts';
import { NO_DRA } from '../../dra/lookup.ts';
import type { KubeResourceClaim, KubeResourceClaimTemplate, ResourceClaimSpec } from '../../dra/objects.ts';
import { podRequests } from '../../dra/pod-claims.ts';
import { poolNamed, tenantNamed, type Pool } from '../../policy/model.ts';
import { BUILTIN, type CheckContext, type PodCheck, type Violation } from '../check.ts';
import { tenantOfNamespace } from '../cluster-view.ts';

export const claimsCheck: PodCheck = (s, ctx) => {
  const dra = s.dra;
  if (!dra) return [];
  const out: Violation[] = [];
  // A workload template may be applied before the claim templates it names (Helm installs unknown kinds last); its
  // pods are checked when they are created.
  for (const message of dra.unresolved)
    out.push({ rule: BUILTIN.tenancy, action: s.template ? 'warn' : 'enforce', message: `${s.where}${message}` });
  for (const message of dra.malformed)
    out.push({ rule: BUILTIN.request, action: 'enforce', message: `${s.where}${message}` });
  if (dra.gpu)
    for (const message of gpuRequestProblems(
      podRequests(dra),
      s.where,
      s.namespace,
      s.tenantName,
      s.tenant,
      ctx.policy,
      ctx.view.dra ?? NO_DRA,
      true,
    ))
      out.push({ rule: BUILTIN.tenancy, action: 'enforce', message });
  return out;
};

function claimSpecOf(kind: string, obj: unknown): ResourceClaimSpec | undefined {
  if (kind === 'ResourceClaimTemplate') return (obj as KubeResourceClaimTemplate | null)?.spec?.spec ?? undefined;
  return (obj as KubeResourceClaim | null)?.spec;
}

function specViolations(kind: string, obj: unknown, namespace: string, ctx: CheckContext): Violation[] {
  const name = (obj as { metadata?: { name?: string } } | null)?.metadata?.name ?? '';
  const where = `${kind} ${name}: `;
  const malformed: string[] = [];
  const lookup = ctx.view.dra ?? NO_DRA;
  const requests = readClaimSpec(claimSpecOf(kind, obj), ctx.policy, lookup, malformed);
  const out: Violation[] = malformed.map((m) => ({
    rule: BUILTIN.request,
    action: 'enforce',
    message: `${where}${m}`,
  }));
  if (!asksForGpus(requests)) return out;
  const tenantName = tenantOfNamespace(ctx.view, namespace);
  const tenant = tenantName === null ? undefined : tenantNamed(ctx.policy, tenantName);
  for (const message of gpuRequestProblems(requests, where, namespace, tenantName, tenant, ctx.policy, lookup))
    out.push({ rule: BUILTIN.tenancy, action: 'enforce', message });
  if (tenant) {
    // Weighed in the tenant's first pool that lists the classes it names (the MIG geometry of its GPU model).
    const pool: Pool | null =
      tenant.pools
        .map((p) => poolNamed(ctx.policy, p))
        .find((p) =>
          requests.some((r) =>
            r.alternatives.some((a) => a.gpu && p !== undefined && poolClasses(p, lookup).includes(a.className)),
          ),
        ) ?? null;
    for (const message of claimSizeProblems(requestsEquivalents(requests, pool), where, tenant))
      out.push({ rule: BUILTIN.quota, action: 'enforce', message });
  }
  return out;
}

/** The violations of a ResourceClaim or ResourceClaimTemplate; an UPDATE is judged by the findings it adds. */
export function claimObjectViolations(
  kind: 'ResourceClaim' | 'ResourceClaimTemplate',
  obj: unknown,
  old: unknown,
  namespace: string,
  ctx: CheckContext,
): Violation[] {
  const now = specViolations(kind, obj, namespace, ctx);
  if (old === null || old === undefined) return now;
  const key = (v: Violation) => `${v.rule}\u0000${v.message}`;
  const had = new Set(specViolations(kind, old, namespace, ctx).map(key));
  return now.filter((v) => !had.has(key(v)));
}
