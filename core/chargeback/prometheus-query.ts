// GPU-hours from Prometheus: one instant query at the window's end, integrating the extender's per-pod series
// (tessera_pod_gpu_equivalents) over the window with a subquery at a fixed step, so that the answer does not depend
// on recording rules being installed or on the scrape interval.
//
// Every extender replica exports the per-pod series from its own informers, the standby too, and each replica is its
// own target. At every step the query takes the leader's series (tessera_extender_leader == 1 on the same target),
// and only while no replica leads (a killed leader's series went stale and the standby has not taken the Lease yet)
// the largest value per pod across the replicas that still export: a leader change neither double counts nor leaves
// a gap. Taking the largest value across replicas all the time would not double count either, but would count each
// pod from the first replica's scrape that sees it to the last one's that still does: up to one scrape interval too
// much per pod. Pods are told apart by their own labels, never by naming target labels to drop.
//
// At each step a series counts with its latest sample. A pod that ends leaves the next scrape, and Prometheus writes a
// staleness marker then (also for every series of a target whose scrape fails), so an ended pod stops counting within
// one scrape interval, not after the 5-minute lookback: between two scrapes a pod counts what it held at the earlier
// one, as between two snapshots it counts what it holds in the earlier one (gpu-hours.ts).

import { usageKey, usageReport, type UsageReport } from './gpu-hours.ts';

export const POD_GPU_EQUIVALENTS = 'tessera_pod_gpu_equivalents';

/** The labels that name one pod's share of one GPU (what the extender exports), instance and job excluded. */
export const POD_IDENTITY = ['namespace', 'pod', 'tenant', 'pool', 'node', 'gpu'] as const;

export const EXTENDER_LEADER = 'tessera_extender_leader';

/** GPU-equivalents held per pod and GPU: the leader's series, or while no replica leads, the largest across replicas. */
export function heldPerPod(): string {
  const max = `max by (${POD_IDENTITY.join(', ')})`;
  const leaders = `${EXTENDER_LEADER} == 1`;
  return `${max} (${POD_GPU_EQUIVALENTS} and on (instance, job) (${leaders})) or (${max} (${POD_GPU_EQUIVALENTS}) unless on () max(${leaders}))`;
}

/** GPU-equivalents held per `by` labels at the query time (the plot's and the dashboard's shape). */
export const heldBy = (by: readonly string[]): string => `sum by (${by.join(', ')}) (${heldPerPod()})`;

/** The PromQL for GPU-hours per tenant, namespace and pool over the `windowSeconds` ending at the query time. */
export function gpuHoursQuery(windowSeconds: number, stepSeconds: number): string {
  const step = Math.round(stepSeconds);
  const held = heldBy(['tenant', 'namespace', 'pool']);
  return `sum by (tenant, namespace, pool) (sum_over_time((${held})[${Math.round(windowSeconds)}s:${step}s])) * ${step} / 3600`;
}

interface VectorSample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

/** Reads Prometheus's /api/v1/query answer; says what is wrong with it instead of guessing. */
export function usageFromQueryResult(body: unknown, from: Date, to: Date): UsageReport | string {
  const b = body as { status?: string; error?: string; data?: { resultType?: string; result?: unknown } } | null;
  if (b?.status !== 'success')
    return `Prometheus answered ${b?.status ?? 'nothing'}: ${b?.error ?? 'no error message'}`;
  if (b.data?.resultType !== 'vector' || !Array.isArray(b.data.result))
    return 'Prometheus did not answer an instant vector';
  const hours = new Map<string, number>();
  for (const s of b.data.result as VectorSample[]) {
    const m = s.metric ?? {};
    const value = Number(s.value?.[1]);
    if (!Number.isFinite(value)) continue;
    hours.set(usageKey(m.tenant ?? '', m.namespace ?? '', m.pool ?? ''), value);
  }
  return usageReport(from, to, hours);
}
