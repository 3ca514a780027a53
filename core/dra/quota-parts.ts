// A pod's weight against its tenant's quota with DRA: what the pod alone holds (its annotation or native ask as
// planned in its pool, its template claims and DRA-backed extended resources) and the named ResourceClaims it
// shares with other pods, which count once per claim however many pods name it.

import { parseDemand } from '../demand.ts';
import type { KubePod } from '../kube-objects.ts';
import { equivalentsOfPod } from '../pools/equivalents.ts';
import { poolNamed, type Policy, type Pool } from '../policy/model.ts';
import { POOL_ANNOTATION } from '../well-known-names.ts';
import type { DraLookup } from './lookup.ts';
import { podDraEquivalents, readPodDra, type DraEquivalents, type PodDra } from './pod-claims.ts';

export function podQuotaParts(pod: KubePod, policy: Policy, lookup: DraLookup | undefined): DraEquivalents {
  const base = equivalentsOfPod(pod, policy);
  if (lookup === undefined) return { own: base, shared: new Map() };
  const namespace = pod.metadata?.namespace ?? '';
  const dra = readPodDra(pod, namespace, policy, lookup);
  if (!dra.gpu) return { own: base, shared: new Map() };
  const parsed = parseDemand(pod, policy.accelerators);
  const poolName = parsed.ok ? parsed.demand.intent.pool : (pod.metadata?.annotations?.[POOL_ANNOTATION] ?? null);
  const pool = poolName === null ? null : (poolNamed(policy, poolName) ?? null);
  const claims = podDraEquivalents(dra, namespace, pool);
  return { own: base + claims.own, shared: claims.shared };
}

/** The equivalents of the pod's shared ResourceClaims that the tenant already holds through other pods. */
export function sharedAlreadyHeld(
  dra: PodDra | undefined,
  namespace: string,
  pool: Pool,
  held: ReadonlySet<string> | undefined,
): number {
  if (!dra?.gpu || held === undefined) return 0;
  let total = 0;
  for (const [claim, eq] of podDraEquivalents(dra, namespace, pool).shared) if (held.has(claim)) total += eq;
  return total;
}
