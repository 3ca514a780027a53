// GPU-equivalents, the unit of tenant quotas and maxGpusPerPod: a whole GPU is 1, a fraction f is f, a MIG instance is
// its compute slices over the GPU's, a time-slice or MPS replica is 1/replicas.

import { parseDemand, type PodDemand } from '../demand.ts';
import type { KubePod } from '../kube-objects.ts';
import { type GpuShare, parseAssignment } from '../assignment.ts';
import { ASSIGNMENT, GPU_MILLI, NVIDIA_GPU, NVIDIA_GPU_SHARED, NVIDIA_MIG_PREFIX } from '../well-known-names.ts';
import { poolNamed, type Policy } from '../policy/model.ts';
import { gpuAsk } from './gpu-ask.ts';
import { planInPool } from './gpu-plan.ts';
import { devicesEquivalents } from './device-plan.ts';

/** Equivalents from resources alone, for pods outside any known pool. */
function fromResources(resources: Readonly<Record<string, number>>, devices: number): number {
  let total = devices;
  for (const [r, n] of Object.entries(resources)) {
    if (r === GPU_MILLI) total += n / 1000;
    else if (r === NVIDIA_GPU || r === NVIDIA_GPU_SHARED) total += n;
    else if (r.startsWith(NVIDIA_MIG_PREFIX)) {
      const slices = Number(/^(\d+)g/.exec(r.slice(NVIDIA_MIG_PREFIX.length))?.[1] ?? 7);
      total += (n * slices) / 7;
    }
  }
  return total;
}

/**
 * A parsed demand's GPU-equivalents under the policy: by its pool's plan, else by what its resources say. A memory-only
 * share weighs what it took once placed (`held`: the GPUs of its assignment or placement), and the most it may take
 * before.
 */
export function podEquivalents(demand: PodDemand, policy: Policy, held: readonly GpuShare[] | null = null): number {
  if (demand.fraction?.memoryOnly && held !== null && held.length > 0)
    return held.reduce((sum, g) => sum + g.milli, 0) / 1000;
  const pool = poolNamed(policy, demand.intent.pool ?? '');
  if (pool) {
    const planned = planInPool(pool, gpuAsk(demand));
    if (planned.ok) return planned.plan.equivalents;
  }
  return fromResources(demand.gpuResources, devicesEquivalents(demand.devices, policy));
}

/** The GPUs a pod's tessera.io/assignment records, or null when it has none (or an unreadable one). */
export function assignedGpus(pod: KubePod): readonly GpuShare[] | null {
  const text = pod.metadata?.annotations?.[ASSIGNMENT];
  if (text === undefined) return null;
  const assignment = parseAssignment(text);
  return typeof assignment === 'string' ? null : assignment.gpus;
}

/** For callers holding only the object: a malformed pod weighs 0 (admission denies it on its own). */
export function equivalentsOfPod(pod: KubePod, policy: Policy): number {
  const parsed = parseDemand(pod, policy.accelerators);
  return parsed.ok ? podEquivalents(parsed.demand, policy, assignedGpus(pod)) : 0;
}

/** Whether holding `held` and adding `needed` stays within `quota` (float-tolerant). */
export function withinQuota(held: number, needed: number, quota: number): boolean {
  return held + needed <= quota + 1e-9;
}

/** Rounds for messages: 0.333333 -> 0.333. */
export function formatEquivalents(n: number): string {
  return String(Math.round(n * 1000) / 1000);
}
