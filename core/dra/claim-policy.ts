// What a tenant may claim through DRA, and what it weighs: a GPU alternative must name a DeviceClass that one of the
// tenant's pools lists, may not ask for adminAccess or for every device of a node (allocationMode All), and counts
// toward quota and maxGpusPerPod in GPU-equivalents (a whole GPU 1; a MIG device its compute slices over the GPU's
// when the request pins a profile, else 1; a share of a shareable device its memory over the GPU's).

import { lookupModel } from '../catalog/gpu-models.ts';
import { formatEquivalents } from '../pools/equivalents.ts';
import { poolNamed, type Policy, type Pool, type Tenant } from '../policy/model.ts';
import { NVIDIA_GPU, NVIDIA_MIG_PREFIX, TENANT_LABEL } from '../well-known-names.ts';
import type { Alternative, RequestReading } from './claim-requests.ts';
import { migDeviceEquivalents } from './dra-plan.ts';
import { classOfExtendedResource } from './gpu-classes.ts';
import type { DraLookup } from './lookup.ts';

/** GPU-equivalents of one device of an alternative, in a pool (null: no pool known). */
export function deviceEquivalents(alt: Alternative, pool: Pool | null): number {
  switch (alt.kind) {
    case 'gpu':
      return 1;
    case 'mig':
      return alt.profile === null ? 1 : (migDeviceEquivalents(pool, alt.profile) ?? 1);
    case 'share': {
      const model = pool?.gpuModel ? lookupModel(pool.gpuModel) : null;
      if (!model || alt.memoryMiB === null) return 1;
      return Math.min(1, alt.memoryMiB / model.memoryMiB);
    }
  }
}

/** A request weighs its heaviest GPU alternative (the one the allocator may pick). */
export function requestEquivalents(r: RequestReading, pool: Pool | null): number {
  let most = 0;
  for (const a of r.alternatives) if (a.gpu && !a.all) most = Math.max(most, a.count * deviceEquivalents(a, pool));
  return most;
}

export function requestsEquivalents(requests: readonly RequestReading[], pool: Pool | null): number {
  return requests.reduce((sum, r) => sum + requestEquivalents(r, pool), 0);
}

/** The GPU classes the requests name. */
export function gpuClassesOf(requests: readonly RequestReading[]): string[] {
  const out = new Set<string>();
  for (const r of requests) for (const a of r.alternatives) if (a.gpu) out.add(a.className);
  return [...out];
}

/**
 * The DeviceClasses a pool serves: the ones it lists, and on a dra pool the classes that back the extended resources
 * Tessera translates annotations into there (nvidia.com/gpu, nvidia.com/mig-<profile>; NVIDIA's chart maps each MIG
 * profile to a class of its own), since kube-scheduler claims devices of those classes for such pods.
 */
export function poolClasses(pool: Pool, lookup: DraLookup): string[] {
  if (pool.fractionMode !== 'dra') return [...pool.deviceClasses];
  const out = new Set(pool.deviceClasses);
  for (const c of lookup.deviceClasses()) {
    const resource = c.spec?.extendedResourceName;
    if (!resource || !(resource === NVIDIA_GPU || resource.startsWith(NVIDIA_MIG_PREFIX))) continue;
    const backing = classOfExtendedResource(resource, lookup);
    if (backing !== null) out.add(backing);
  }
  return [...out];
}

function tenantClasses(tenant: Tenant, policy: Policy, lookup: DraLookup): string[] {
  const out = new Set<string>();
  for (const name of tenant.pools) {
    const pool = poolNamed(policy, name);
    if (pool) for (const c of poolClasses(pool, lookup)) out.add(c);
  }
  return [...out];
}

export function tenantListsClass(tenant: Tenant, policy: Policy, className: string, lookup: DraLookup): boolean {
  return tenantClasses(tenant, policy, lookup).includes(className);
}

/**
 * Why the GPU alternatives of these requests are not allowed for the namespace's tenant, one message per problem,
 * each saying what to do instead. `where` prefixes every message (e.g. `ResourceClaimTemplate t: `).
 */
export function gpuRequestProblems(
  requests: readonly RequestReading[],
  where: string,
  namespace: string,
  tenantName: string | null,
  tenant: Tenant | undefined,
  policy: Policy,
  lookup: DraLookup,
  /** The pod's own tenancy check already says the namespace has no (known) tenant: do not repeat it per request. */
  tenancyReported = false,
): string[] {
  const out: string[] = [];
  const own = tenant ? tenantClasses(tenant, policy, lookup) : [];
  for (const r of requests) {
    for (const a of r.alternatives) {
      if (!a.gpu) continue;
      if (a.adminAccess)
        out.push(
          `${where}${a.label} asks for adminAccess to ${a.className} devices, which reaches GPUs that other tenants' pods use; Tessera denies adminAccess outside platform namespaces. Remove adminAccess`,
        );
      if (a.all)
        out.push(
          `${where}${a.label} uses allocationMode All on ${a.className}, which takes every matching device of a node; ask for a number of devices instead (allocationMode ExactCount with count)`,
        );
      if (tenantName === null) {
        if (tenancyReported) continue;
        out.push(
          `${where}${a.label} names DeviceClass ${a.className}, which reaches GPUs, but namespace ${namespace} has no ${TENANT_LABEL} label, and a namespace without a tenant gets no GPUs; ask a platform admin to label the namespace with its tenant`,
        );
        continue;
      }
      if (!tenant) {
        if (tenancyReported) continue;
        out.push(
          `${where}${a.label} names DeviceClass ${a.className}, which reaches GPUs, but tenant "${tenantName}" of namespace ${namespace} is not defined in the policy; ask a platform admin to add the tenant or fix the namespace label`,
        );
        continue;
      }
      if (own.includes(a.className)) continue;
      const instead =
        own.length > 0
          ? `name one of ${own.join(', ')} (the DeviceClasses of tenant ${tenant.name}'s pools)`
          : `tenant ${tenant.name} has no dra pool, so ask for GPUs with tessera.io/gpu-fraction, tessera.io/gpu-count or nvidia.com/gpu`;
      const what =
        a.reach === 'all-devices'
          ? `DeviceClass ${a.className}, whose selectors pin no driver, so it selects every device of a node, GPUs included`
          : `DeviceClass ${a.className}, a GPU class`;
      out.push(`${where}${a.label} names ${what} that no pool of tenant ${tenant.name} lists; ${instead}`);
    }
  }
  return out;
}

/** Messages when a claim's GPU requests alone exceed what the tenant allows per pod or in all. */
export function claimSizeProblems(equivalents: number, where: string, tenant: Tenant): string[] {
  const out: string[] = [];
  if (tenant.maxGpusPerPod !== null && equivalents > tenant.maxGpusPerPod + 1e-9)
    out.push(
      `${where}the claim asks for ${formatEquivalents(equivalents)} GPU-equivalents, and a pod using it would exceed tenant ${tenant.name}'s ${tenant.maxGpusPerPod} per pod; ask for fewer devices`,
    );
  else if (tenant.quotaGpus !== null && equivalents > tenant.quotaGpus + 1e-9)
    out.push(
      `${where}the claim asks for ${formatEquivalents(equivalents)} GPU-equivalents, more than tenant ${tenant.name}'s whole quota of ${tenant.quotaGpus}; ask for fewer devices`,
    );
  return out;
}

/**
 * The pool that serves these GPU classes for the tenant: the named pool, else the first of the tenant's pools that
 * lists every class the tenant may use (classes no pool of the tenant lists are reported on their own).
 */
export function poolForClasses(
  classes: readonly string[],
  tenant: Tenant,
  policy: Policy,
  lookup: DraLookup,
  accept: (pool: Pool) => string | null,
): { pool: Pool } | { message: string } {
  const usable = classes.filter((c) => tenantListsClass(tenant, policy, c, lookup));
  const reasons: string[] = [];
  if (usable.length === 0) {
    // Every class is one the tenant may not claim: the claims check denies each; the pod still gets a pool (a dra
    // pool first) so that the rest of admission reads it as the GPU pod it is.
    const pools = tenant.pools.map((name) => poolNamed(policy, name)).filter((p): p is Pool => p !== undefined);
    for (const pool of [
      ...pools.filter((p) => p.fractionMode === 'dra'),
      ...pools.filter((p) => p.fractionMode !== 'dra'),
    ])
      if (accept(pool) === null) return { pool };
  }
  for (const name of tenant.pools) {
    const pool = poolNamed(policy, name);
    if (!pool) continue;
    const served = poolClasses(pool, lookup);
    const missing = usable.filter((c) => !served.includes(c));
    if (pool.fractionMode !== 'dra' || missing.length > 0) {
      reasons.push(
        pool.fractionMode !== 'dra'
          ? `${name}: not a dra pool`
          : `${name}: does not list ${missing.join(', ')} (its classes: ${pool.deviceClasses.join(', ')})`,
      );
      continue;
    }
    const refused = accept(pool);
    if (refused === null) return { pool };
    reasons.push(`${name}: ${refused}`);
  }
  return {
    message: `no pool of tenant ${tenant.name} can serve this pod's DeviceClasses ${usable.join(', ') || '(none)'} (${reasons.join('; ')})`,
  };
}
