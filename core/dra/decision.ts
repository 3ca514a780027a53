// Where a tenant's pod with GPU claims goes: like decideGpu, the pool the pod names with tessera.io/pool or the first
// of the tenant's pools that can meet it, where "meet" adds DRA: the pool is a dra pool that lists every GPU
// DeviceClass the pod's claims and DRA-backed extended resources name (classes that none of the tenant's pools lists
// are reported by the claims check). The pod weighs its annotation or native ask plus its claims.

import { lookupModel, modelMatches } from '../catalog/gpu-models.ts';
import type { PodDemand } from '../demand.ts';
import type { GpuDecision } from '../pools/gpu-decision.ts';
import { decideGpu } from '../pools/gpu-decision.ts';
import { gpuAsk } from '../pools/gpu-ask.ts';
import { planInPool } from '../pools/gpu-plan.ts';
import { poolNamed, type Policy, type Tenant } from '../policy/model.ts';
import { POOL_ANNOTATION } from '../well-known-names.ts';
import { gpuClassesOf, poolForClasses } from './claim-policy.ts';
import { selectorFacts } from './gpu-classes.ts';
import { podDraEquivalents, podRequests, type PodDra } from './pod-claims.ts';
import { NO_DRA, type DraLookup } from './lookup.ts';

/**
 * The demand without the extended resources a DeviceClass backs with DRA: those are claims (accounted by the claim
 * rules), not device-plugin devices, even when their names are under an accelerator vendor's domain.
 */
export function withoutDraExtended(demand: PodDemand, dra: PodDra): PodDemand {
  if (dra.extended.length === 0) return demand;
  const backed = new Set(dra.extended.map((e) => e.resource));
  const devices = Object.fromEntries(Object.entries(demand.devices).filter(([r]) => !backed.has(r)));
  return { ...demand, devices };
}

/** The GPU decision of a pod, with its DRA claims when it has GPU claims. */
export function decidePodGpu(
  demand: PodDemand,
  dra: PodDra,
  tenant: Tenant,
  policy: Policy,
  namespace: string,
  lookup: DraLookup = NO_DRA,
  nodeSelector: Readonly<Record<string, string>> = {},
): GpuDecision {
  if (!dra.gpu) {
    const decision = decideGpu(demand, tenant, policy, nodeSelector);
    return decision.ok ? decision : (shareOnDraPool(demand, tenant, policy, lookup) ?? decision);
  }
  const ask = gpuAsk(demand);
  const classes = gpuClassesOf(podRequests(dra));
  const accept = (poolName: string) => {
    const pool = poolNamed(policy, poolName)!;
    if (demand.models !== null && pool.gpuModel !== null && !demand.models.some((m) => modelMatches(pool.gpuModel!, m)))
      return `GPU model ${pool.gpuModel} not allowed by tessera.io/gpu-model`;
    const planned = planInPool(pool, ask);
    return planned.ok ? null : planned.message;
  };
  const named = demand.intent.pool;
  if (named !== null && (!poolNamed(policy, named) || !tenant.pools.includes(named)))
    return {
      ok: false,
      ask,
      message: `${POOL_ANNOTATION}=${named} is not a pool of tenant ${tenant.name}; its pools are ${tenant.pools.join(', ')}`,
    };
  const candidates = named === null ? tenant : { ...tenant, pools: [named] };
  const chosen = poolForClasses(classes, candidates, policy, lookup, (p) => accept(p.name));
  if ('message' in chosen) return { ok: false, ask, message: chosen.message };
  const pool = chosen.pool;
  const planned = planInPool(pool, ask);
  if (!planned.ok) return { ok: false, ask, message: planned.message };
  const claims = podDraEquivalents(dra, namespace, pool);
  const equivalents = planned.plan.equivalents + claims.own + [...claims.shared.values()].reduce((a, b) => a + b, 0);
  return { ok: true, ask, pool, plan: { limits: planned.plan.limits, equivalents } };
}

/**
 * A share of one GPU asked for with annotations on a dra pool whose DeviceClass lets several claims share a device
 * (consumable capacity): there is no extended resource for a share, and an admission webhook cannot create the claim,
 * so the denial says exactly which claim to write; Tessera admits it and counts its memory as the share.
 */
function shareOnDraPool(demand: PodDemand, tenant: Tenant, policy: Policy, lookup: DraLookup): GpuDecision | null {
  const ask = gpuAsk(demand);
  if (ask.kind !== 'share') return null;
  const names = demand.intent.pool !== null ? [demand.intent.pool] : tenant.pools;
  for (const name of names) {
    const pool = poolNamed(policy, name);
    if (pool?.fractionMode !== 'dra' || !tenant.pools.includes(name)) continue;
    const shared = pool.deviceClasses.find((c) => selectorFacts(lookup.deviceClass(c)?.spec?.selectors).shareable);
    if (shared === undefined) continue;
    const model = pool.gpuModel === null ? null : lookupModel(pool.gpuModel);
    const memory =
      ask.memoryMiB ?? (model && ask.milli !== null ? Math.ceil((ask.milli * model.memoryMiB) / 1000) : null);
    const amount = memory === null ? 'the memory you need' : `${memory}Mi`;
    return {
      ok: false,
      ask,
      message: `pool ${pool.name} shares GPUs through DRA: its DeviceClass ${shared} lets several claims hold one device, but a share is asked for with a claim, not an annotation. Create a ResourceClaimTemplate with a request for deviceClassName ${shared} and capacity.requests.memory ${amount}, name it in spec.resourceClaims, and remove ${ask.milli !== null ? 'tessera.io/gpu-fraction' : 'tessera.io/gpu-memory'}`,
    };
  }
  return null;
}
