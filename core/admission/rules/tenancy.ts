// Tenant isolation, always enforced: GPUs only for namespaces with a tenant, only in the tenant's pools, no way around
// the pool pinning (foreign pool tolerations, tolerate-everything), priority classes and per-pod size from the tenant.

import { POOL_ANNOTATION, TENANT_LABEL } from '../../well-known-names.ts';
import { poolNamed } from '../../policy/model.ts';
import { BUILTIN, type PodCheck, type Violation } from '../check.ts';
import { formatEquivalents } from '../../pools/equivalents.ts';
import { pinnedToLabels, tolerates } from '../pod-edits.ts';

export const tenancyCheck: PodCheck = (s, ctx) => {
  const out: Violation[] = [];
  const deny = (message: string) =>
    out.push({ rule: BUILTIN.tenancy, action: 'enforce', message: `${s.where}${message}` });
  const spec = s.pod.spec ?? {};
  if (s.gpu) {
    if (s.tenantName === null) {
      deny(
        `namespace ${s.namespace} has no ${TENANT_LABEL} label, and a namespace without a tenant gets no GPUs; ask a platform admin to label the namespace with its tenant`,
      );
      return out;
    }
    if (!s.tenant) {
      deny(
        `namespace ${s.namespace} belongs to tenant "${s.tenantName}", which the policy does not define; ask a platform admin to add the tenant to the policy or fix the namespace label`,
      );
      return out;
    }
    if (s.decision && !s.decision.ok) deny(s.decision.message);
    if (s.decision?.ok) {
      const pool = s.decision.pool;
      if (!s.template && !pinnedToLabels(spec, pool.nodeSelector)) {
        deny(
          `the pod is not pinned to pool ${pool.name} (node affinity must require ${Object.entries(pool.nodeSelector)
            .map(([k, v]) => `${k}=${v}`)
            .join(', ')}); do not remove the affinity Tessera adds`,
        );
      }
      const max = s.tenant.maxGpusPerPod;
      if (max !== null && s.decision.plan.equivalents > max + 1e-9) {
        deny(
          `the pod asks for ${formatEquivalents(s.decision.plan.equivalents)} GPU-equivalents; tenant ${s.tenant.name} allows at most ${max} per pod. Split the work or ask for fewer GPUs`,
        );
      }
    }
  }
  // Toleration guards apply in tenant namespaces; platform namespaces (device plugin, monitoring DaemonSets) must be
  // able to tolerate pool taints and are kept out of the webhook's namespaceSelector or have no tenant.
  const own = new Set(s.tenant?.pools ?? []);
  if (s.tenantName !== null) {
    for (const t of spec.tolerations ?? []) {
      if ((t.key === undefined || t.key === '') && t.operator === 'Exists') {
        deny(
          "a toleration with operator Exists and no key tolerates every taint, including other pools'; tolerate specific taints instead",
        );
        continue;
      }
      for (const pool of ctx.policy.pools) {
        if (own.has(pool.name) || !pool.taint || !tolerates(t, pool.taint)) continue;
        deny(
          `the pod tolerates the taint of pool ${pool.name}, which tenant ${s.tenantName} may not use; remove the toleration ${t.key}${t.value ? `=${t.value}` : ''}:${t.effect ?? '*'}`,
        );
      }
    }
  }
  const pc = spec.priorityClassName;
  if (s.tenant && pc && s.tenant.priorityClasses !== null && !s.tenant.priorityClasses.includes(pc)) {
    deny(
      `priority class ${pc} is not allowed for tenant ${s.tenant.name}; use one of ${s.tenant.priorityClasses.join(', ') || '(none)'} or none`,
    );
  }
  if (
    s.tenant &&
    s.gpu &&
    s.pod.metadata?.labels?.[TENANT_LABEL] !== undefined &&
    s.pod.metadata.labels[TENANT_LABEL] !== s.tenant.name
  ) {
    deny(
      `label ${TENANT_LABEL}=${s.pod.metadata.labels[TENANT_LABEL]} does not match the namespace's tenant ${s.tenant.name}; remove the label, Tessera sets it`,
    );
  }
  const named = s.pod.metadata?.annotations?.[POOL_ANNOTATION];
  if (!s.gpu && named && s.tenant && !own.has(named))
    deny(`tessera.io/pool=${named} is not a pool of tenant ${s.tenant.name}`);
  if (named && !poolNamed(ctx.policy, named))
    deny(
      `tessera.io/pool=${named} is not a pool of the policy; remove the annotation or name one of ${ctx.policy.pools.map((p) => p.name).join(', ')}`,
    );
  return out;
};
