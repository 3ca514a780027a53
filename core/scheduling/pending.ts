// Why a GPU pod waits: the reason code in kube-scheduler's last PodScheduled=False condition (the extender's codes
// appear in its message), kube-scheduler's own reason when no Tessera code does, or "waiting" before any attempt.

import type { KubePod } from '../kube-objects.ts';
import { REASONS } from '../reasons.ts';

const CODES = Object.keys(REASONS);

export function pendingReason(pod: KubePod): string {
  const conditions = (pod.status?.conditions ?? []) as {
    type?: string;
    status?: string;
    reason?: string;
    message?: string;
  }[];
  const scheduled = conditions.find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (!scheduled) return 'waiting';
  const message = scheduled.message ?? '';
  return CODES.find((code) => message.includes(code)) ?? scheduled.reason ?? 'Unschedulable';
}
