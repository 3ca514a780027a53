// GPU-hours from Prometheus: one instant query at the window's end, integrating the extender's per-pod series
// (tessera_pod_gpu_equivalents) over the window with a subquery at a fixed step, so that the answer does not depend
// on recording rules being installed or on the scrape interval.

import { usageKey, usageReport, type UsageReport } from './gpu-hours.ts';

export const POD_GPU_EQUIVALENTS = 'tessera_pod_gpu_equivalents';

/** The PromQL for GPU-hours per tenant, namespace and pool over the `windowSeconds` ending at the query time. */
export function gpuHoursQuery(windowSeconds: number, stepSeconds: number): string {
  const held = `sum by (tenant, namespace, pool) (max without (instance, job) (${POD_GPU_EQUIVALENTS}))`;
  return `sum by (tenant, namespace, pool) (sum_over_time((${held})[${Math.round(windowSeconds)}s:${Math.round(stepSeconds)}s])) * ${Math.round(stepSeconds)} / 3600`;
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
