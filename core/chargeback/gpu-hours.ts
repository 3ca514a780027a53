// GPU-hours per tenant, namespace and pool, the unit finance bills in. A pod counts GPU-equivalents as quota counts them
// (whole GPU 1, fraction f, MIG instance compute slices / 7, replica 1/replicas), for as long as it holds them.

import { parseDemand, wantsGpu } from '../demand.ts';
import type { ClusterSnapshot } from '../invariants/cluster-snapshot.ts';
import type { KubePod } from '../kube-objects.ts';
import { isTerminated } from '../pod-lifecycle.ts';
import { vmOfPod } from '../kubevirt/launcher.ts';
import type { Policy } from '../policy/model.ts';
import { assignedGpus, podEquivalents } from '../pools/equivalents.ts';
import { POOL_ANNOTATION, TENANT_LABEL } from '../well-known-names.ts';

export interface UsageRow {
  /** '' for pods outside any tenant or pool. */
  readonly tenant: string;
  readonly namespace: string;
  readonly pool: string;
  readonly gpuHours: number;
}

export interface UsageReport {
  /** RFC 3339. */
  readonly from: string;
  readonly to: string;
  readonly rows: readonly UsageRow[];
}

/** Rows sorted by tenant, namespace, pool; zero rows dropped. */
export function usageReport(from: Date, to: Date, hours: ReadonlyMap<string, number>): UsageReport {
  const rows: UsageRow[] = [];
  for (const [key, gpuHours] of hours) {
    if (gpuHours <= 0) continue;
    const [tenant, namespace, pool] = JSON.parse(key) as [string, string, string];
    rows.push({ tenant, namespace, pool, gpuHours });
  }
  rows.sort(
    (a, b) =>
      a.tenant.localeCompare(b.tenant) || a.namespace.localeCompare(b.namespace) || a.pool.localeCompare(b.pool),
  );
  return { from: from.toISOString(), to: to.toISOString(), rows };
}

export const usageKey = (tenant: string, namespace: string, pool: string): string =>
  JSON.stringify([tenant, namespace, pool]);

/** What a pod holds in a snapshot: GPU-equivalents while it is bound and not finished, else 0. */
function held(pod: KubePod, policy: Policy): number {
  if (!pod.spec?.nodeName || isTerminated(pod)) return 0;
  const parsed = parseDemand(pod, policy.accelerators);
  return parsed.ok && wantsGpu(parsed.demand) ? podEquivalents(parsed.demand, policy, assignedGpus(pod)) : 0;
}

export interface PodHolding {
  /** usageKey(tenant, namespace, pool) */
  readonly key: string;
  readonly equivalents: number;
}

/** What each pod holds in one snapshot, by pod UID (namespace/name without one): only pods that hold something. */
export function podHoldings(snapshot: ClusterSnapshot, policy: Policy): Map<string, PodHolding> {
  const tenants = new Map(
    snapshot.namespaces.map((n) => [n.metadata?.name ?? '', n.metadata?.labels?.[TENANT_LABEL] ?? '']),
  );
  const holdings = new Map<string, PodHolding>();
  // A VM is charged once, as its quota counts it: by the launcher pod that holds the most (a live migration's source
  // and target hold the same devices for a while; core/kubevirt/launcher.ts).
  const vmHolder = new Map<string, { pod: KubePod; equivalents: number }>();
  for (const pod of snapshot.pods) {
    const vm = vmOfPod(pod);
    if (vm === null) continue;
    const equivalents = held(pod, policy);
    const best = vmHolder.get(vm);
    if (best === undefined || equivalents > best.equivalents) vmHolder.set(vm, { pod, equivalents });
  }
  for (const pod of snapshot.pods) {
    const vm = vmOfPod(pod);
    if (vm !== null && vmHolder.get(vm)?.pod !== pod) continue;
    const equivalents = held(pod, policy);
    if (equivalents <= 0) continue;
    const namespace = pod.metadata?.namespace ?? '';
    const key = usageKey(tenants.get(namespace) ?? '', namespace, pod.metadata?.annotations?.[POOL_ANNOTATION] ?? '');
    holdings.set(pod.metadata?.uid || `${namespace}/${pod.metadata?.name ?? ''}`, { key, equivalents });
  }
  return holdings;
}

/**
 * GPU-hours in [from, to] from snapshots: between two consecutive snapshots a pod counts what it holds in the earlier
 * one. Time outside the snapshots' span is not counted (nothing is known of it).
 */
export function gpuHoursFromSnapshots(
  snapshots: readonly ClusterSnapshot[],
  policy: Policy,
  from: Date,
  to: Date,
): UsageReport {
  const ordered = [...snapshots].sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  const hours = new Map<string, number>();
  for (let i = 0; i + 1 < ordered.length; i++) {
    const start = Math.max(Date.parse(ordered[i]!.time), from.getTime());
    const end = Math.min(Date.parse(ordered[i + 1]!.time), to.getTime());
    if (end <= start) continue;
    const span = (end - start) / 3_600_000;
    for (const { key, equivalents } of podHoldings(ordered[i]!, policy).values())
      hours.set(key, (hours.get(key) ?? 0) + equivalents * span);
  }
  return usageReport(from, to, hours);
}
