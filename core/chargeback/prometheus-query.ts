// GPU-hours from Prometheus: one instant query at the window's end, integrating the extender's per-pod series
// (tessera_pod_gpu_equivalents) over the window with a subquery at a fixed step, so that the answer does not depend
// on recording rules being installed or on the scrape interval.
//
// Every extender replica exports the series from its own informers (the standby too, so a leader change leaves no
// gap), and each replica is a separate target: the query first takes, at every step, the largest value per pod
// identity (namespace, pod, node, gpu and the tenant and pool it is billed to) across instances and any other target
// label, so two replicas, or a replica restarted under another instance name, never count a pod twice.
//
// At each step a series counts with its latest sample. A pod that ends leaves the next scrape, and Prometheus writes a
// staleness marker then (also for every series of a target whose scrape fails), so an ended pod stops counting within
// one scrape interval, not after the 5-minute lookback: between two scrapes a pod counts what it held at the earlier
// one, as between two snapshots it counts what it holds in the earlier one (gpu-hours.ts).

import { usageKey, usageReport, type UsageReport } from './gpu-hours.ts';

export const POD_GPU_EQUIVALENTS = 'tessera_pod_gpu_equivalents';

/** The labels that name one pod's share of one GPU (what the extender exports), instance and job excluded. */
export const POD_IDENTITY = ['namespace', 'pod', 'tenant', 'pool', 'node', 'gpu'] as const;

/** GPU-equivalents held per pod and GPU, each counted once whatever the number of replicas scraped. */
export const heldPerPod = (): string => `max by (${POD_IDENTITY.join(', ')}) (${POD_GPU_EQUIVALENTS})`;

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
