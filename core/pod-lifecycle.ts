// Where a pod is in its life, as both servers count it: a pod that has finished (Succeeded or Failed) holds nothing.

import type { KubePod } from './kube-objects.ts';

export function isTerminated(pod: KubePod): boolean {
  const phase = pod.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

/** Finished, or on its way out: its GPUs and quota are about to be free. */
export function isLeaving(pod: KubePod): boolean {
  return isTerminated(pod) || Boolean(pod.metadata?.deletionTimestamp);
}
