// Where a tenant's GPU pod goes: the pool it names with tessera.io/pool, or the first of its tenant's pools that can
// meet the ask and that the pod's own nodeSelector does not rule out (a Kueue ResourceFlavor's nodeLabels, injected
// into a Job's pods at admission, pick the pool that way). Mutation and validation both call this, so they always
// agree.

import { modelMatches } from '../catalog/gpu-models.ts';
import type { PodDemand } from '../demand.ts';
import { POOL_ANNOTATION } from '../well-known-names.ts';
import { poolNamed, type Policy, type Pool, type Tenant } from '../policy/model.ts';
import { describeAsk, gpuAsk, type GpuAsk, type GpuPlan } from './gpu-ask.ts';
import { planInPool } from './gpu-plan.ts';
import { unmappedDeviceMessage, unmappedDevices } from './device-plan.ts';

export type GpuDecision =
  | { readonly ok: true; readonly ask: GpuAsk; readonly pool: Pool; readonly plan: GpuPlan }
  | { readonly ok: false; readonly ask: GpuAsk; readonly message: string };

function modelAllowed(pool: Pool, demand: PodDemand): boolean {
  if (demand.models === null || pool.gpuModel === null) return true;
  return demand.models.some((m) => modelMatches(pool.gpuModel!, m));
}

/** The label of the pod's own nodeSelector that rules the pool out (a key both set, to different values), or null. */
function selectorConflict(pool: Pool, nodeSelector: Readonly<Record<string, string>>): string | null {
  for (const [k, v] of Object.entries(pool.nodeSelector))
    if (nodeSelector[k] !== undefined && nodeSelector[k] !== v) return `${k}=${nodeSelector[k]}`;
  return null;
}

export function decideGpu(
  demand: PodDemand,
  tenant: Tenant,
  policy: Policy,
  nodeSelector: Readonly<Record<string, string>> = {},
): GpuDecision {
  const ask = gpuAsk(demand);
  const unmapped = ask.kind === 'devices' ? unmappedDevices(ask.devices, policy) : [];
  if (unmapped.length > 0)
    return { ok: false, ask, message: unmapped.map((r) => unmappedDeviceMessage(r, policy)).join('; ') };
  const named = demand.intent.pool;
  if (named !== null) {
    const pool = poolNamed(policy, named);
    if (!pool || !tenant.pools.includes(named)) {
      return {
        ok: false,
        ask,
        message: `${POOL_ANNOTATION}=${named} is not a pool of tenant ${tenant.name}; its pools are ${tenant.pools.join(', ')}`,
      };
    }
    if (!modelAllowed(pool, demand))
      return {
        ok: false,
        ask,
        message: `pool ${pool.name} has ${pool.gpuModel} GPUs, which tessera.io/gpu-model does not allow`,
      };
    const planned = planInPool(pool, ask);
    return planned.ok ? { ok: true, ask, pool, plan: planned.plan } : { ok: false, ask, message: planned.message };
  }
  const reasons: string[] = [];
  for (const name of tenant.pools) {
    const pool = poolNamed(policy, name);
    if (!pool) continue;
    if (!modelAllowed(pool, demand)) {
      reasons.push(`${name}: GPU model ${pool.gpuModel} not allowed by tessera.io/gpu-model`);
      continue;
    }
    const conflict = selectorConflict(pool, nodeSelector);
    if (conflict !== null) {
      reasons.push(`${name}: the pod's nodeSelector ${conflict} is outside the pool`);
      continue;
    }
    const planned = planInPool(pool, ask);
    if (planned.ok) return { ok: true, ask, pool, plan: planned.plan };
    reasons.push(`${name}: ${planned.message}`);
  }
  return {
    ok: false,
    ask,
    message: `no pool of tenant ${tenant.name} can give ${describeAsk(ask)} (${reasons.join('; ')})`,
  };
}
