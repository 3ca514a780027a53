// What admission may know about the cluster beyond the object under review: namespaces (for tenants) and the pods
// that count against tenants' quotas. The webhook feeds it from informers; the CLI from a context file.

import type { KubeNamespace, KubePod } from '../kube-objects.ts';
import { TENANT_LABEL } from '../well-known-names.ts';
import type { Policy } from '../policy/model.ts';
import { TenantUsageIndex, type TenantUsage } from './tenant-usage.ts';
import type { DraLookup } from '../dra/lookup.ts';

export interface ClusterView {
  namespace(name: string): KubeNamespace | undefined;
  /** A pod as the API server has it (a Binding's review names its pod but does not carry it). */
  pod(namespace: string, name: string): KubePod | undefined;
  /** GPU-equivalents held by the tenant's non-terminated pods, except the pod with `exceptUid`. */
  tenantUsage(tenant: string, policy: Policy, exceptUid: string | null): TenantUsage;
  /** DeviceClasses, ResourceClaims and ResourceClaimTemplates (absent: none known). */
  readonly dra?: DraLookup;
  /** Whether the view saw the pod with this UID deleted (absent: the view keeps no such record). */
  podGone?(uid: string): boolean;
}

export function tenantOfNamespace(view: ClusterView, namespace: string): string | null {
  return view.namespace(namespace)?.metadata?.labels?.[TENANT_LABEL] || null;
}

/** A ClusterView over plain lists (CLI context files, tests). */
export function staticClusterView(
  namespaces: readonly KubeNamespace[],
  pods: readonly KubePod[],
  dra?: DraLookup,
): ClusterView {
  const byName = new Map(namespaces.map((n) => [n.metadata?.name ?? '', n]));
  const podsByName = new Map(pods.map((p) => [`${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`, p]));
  const usage = new TenantUsageIndex((ns) => byName.get(ns)?.metadata?.labels?.[TENANT_LABEL] || null, dra);
  for (const p of pods) usage.upsertPod(p);
  const view: ClusterView = {
    namespace: (name) => byName.get(name),
    pod: (namespace, name) => podsByName.get(`${namespace}/${name}`),
    tenantUsage(tenant, policy, exceptUid) {
      return usage.usage(tenant, policy, exceptUid);
    },
    ...(dra ? { dra } : {}),
  };
  return view;
}
