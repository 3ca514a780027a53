// Where a pool's GPUs may be: the policy's notion of region is the well-known node label topology.kubernetes.io/region
// in a pool's nodeSelector (examples/policy.yaml pins sovereign-eu that way). A pool without it may be anywhere. No new
// policy field: the selector already keeps the pool's pods on nodes of that region inside one cluster, and the fleet
// dispatcher reads the same selector to keep the tenant's jobs off clusters of other regions.

import type { Policy, Pool } from '../policy/model.ts';
import { poolNamed, tenantNamed } from '../policy/model.ts';

export const REGION_LABEL = 'topology.kubernetes.io/region';

/** The region a pool is pinned to, or null when its selector does not pin one. */
export function poolRegion(pool: Pool): string | null {
  return pool.nodeSelector[REGION_LABEL] ?? null;
}

/** Whether the pool's pods may run in a cluster of `region` (null: the cluster does not say). */
export function poolAllowedIn(pool: Pool, region: string | null): boolean {
  const pinned = poolRegion(pool);
  return pinned === null || pinned === region;
}

export interface TenantReach {
  /** Regions the tenant's pools are pinned to. */
  readonly regions: readonly string[];
  /** Some pool of the tenant is not pinned: its jobs may go to any region that pool has nodes in. */
  readonly anywhere: boolean;
}

/** The regions a tenant's GPU jobs may run in, from its pools. */
export function tenantReach(policy: Policy, tenant: string): TenantReach {
  const pools = (tenantNamed(policy, tenant)?.pools ?? []).map((p) => poolNamed(policy, p)).filter((p) => !!p);
  const regions = [...new Set(pools.map(poolRegion).filter((r): r is string => r !== null))].sort();
  return { regions, anywhere: pools.some((p) => poolRegion(p) === null) };
}
