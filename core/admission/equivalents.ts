// GPU-equivalents, the unit of tenant quotas and maxGpusPerPod: a whole GPU is 1, a fraction f is f, a MIG instance is
// its compute slices over the GPU's, a time-slice or MPS replica is 1/replicas.

import { readDemand } from '../demand.ts';
import type { KubePod } from '../kube-objects.ts';
import { GPU_MILLI, NVIDIA_GPU, NVIDIA_GPU_SHARED, NVIDIA_MIG_PREFIX, POOL_ANNOTATION } from '../names.ts';
import { poolNamed, type Policy } from '../policy/model.ts';
import { gpuAsk, planInPool } from './gpu-plan.ts';

/** Equivalents from resources alone, for pods outside any known pool. */
function fromResources(resources: Readonly<Record<string, number>>): number {
  let total = 0;
  for (const [r, n] of Object.entries(resources)) {
    if (r === GPU_MILLI) total += n / 1000;
    else if (r === NVIDIA_GPU || r === NVIDIA_GPU_SHARED) total += n;
    else if (r.startsWith(NVIDIA_MIG_PREFIX)) total += (n * Number(/^(\d+)g/.exec(r.slice(NVIDIA_MIG_PREFIX.length))?.[1] ?? 7)) / 7;
  }
  return total;
}

/** A pod's GPU-equivalents under the policy; malformed pods weigh what their resources say, or 0. */
export function podEquivalents(pod: KubePod, policy: Policy): number {
  let demand;
  try {
    demand = readDemand(pod);
  } catch {
    return 0;
  }
  const pool = poolNamed(policy, pod.metadata?.annotations?.[POOL_ANNOTATION] ?? '');
  if (pool) {
    const planned = planInPool(pool, gpuAsk(demand));
    if (planned.ok) return planned.plan.equivalents;
  }
  return fromResources(demand.gpuResources);
}

/** Rounds for messages: 0.333333 -> 0.333. */
export function formatEquivalents(n: number): string {
  return String(Math.round(n * 1000) / 1000);
}
