// Drift: running pods re-evaluated against the current policy. A pod has drifted when a rule it passed at admission
// (or was never checked against) now fails, or when it was admitted under an older policy revision. Checks that only
// make sense at admission time (who is asking, nodeName on CREATE, quota at CREATE) are left out.

import type { KubePod } from '../kube-objects.ts';
import { POLICY_REVISION } from '../well-known-names.ts';
import type { Policy } from '../policy/model.ts';
import { isLeaving } from '../pod-lifecycle.ts';
import { tenantOfNamespace, type ClusterView } from './cluster-view.ts';
import type { CheckContext, Violation } from './check.ts';
import { podViolations, subjectOf } from './validation.ts';

export interface DriftedPod {
  readonly namespace: string;
  readonly name: string;
  readonly tenant: string | null;
  readonly admittedRevision: string | null;
  readonly violations: readonly Violation[];
}

export interface DriftReport {
  readonly revision: string;
  readonly checked: number;
  readonly drifted: readonly DriftedPod[];
  /** Pods admitted under another revision (drifted or not). */
  readonly staleRevision: number;
  /** Count of violations by rule, action and tenant ("-" for none). */
  readonly byRule: readonly {
    readonly rule: string;
    readonly action: string;
    readonly tenant: string;
    readonly pods: number;
  }[];
}

export function auditPods(pods: Iterable<KubePod>, policy: Policy, view: ClusterView): DriftReport {
  const ctx: CheckContext = {
    policy,
    view,
    user: {},
    operation: 'UPDATE',
    system: false,
    admin: false,
    recentRevisions: new Set(),
  };
  const drifted: DriftedPod[] = [];
  const counts = new Map<string, number>();
  let checked = 0;
  let staleRevision = 0;
  for (const pod of pods) {
    if (isLeaving(pod)) continue;
    checked++;
    const namespace = pod.metadata?.namespace ?? '';
    const tenant = tenantOfNamespace(view, namespace);
    const admitted = pod.metadata?.annotations?.[POLICY_REVISION] ?? null;
    if (tenant !== null && admitted !== policy.revision) staleRevision++;
    // Evaluated as an UPDATE that changes nothing: UPDATE guards pass, every other rule is checked as written today.
    const violations = podViolations(subjectOf(pod, pod, namespace, '', false, ctx), ctx);
    if (violations.length === 0) continue;
    drifted.push({ namespace, name: pod.metadata?.name ?? '', tenant, admittedRevision: admitted, violations });
    const seen = new Set<string>();
    for (const v of violations) {
      const key = `${v.rule}\u0000${v.action}\u0000${tenant ?? '-'}`;
      if (seen.has(key)) continue;
      seen.add(key);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  drifted.sort((a, b) => (a.namespace + '/' + a.name < b.namespace + '/' + b.name ? -1 : 1));
  const byRule = [...counts.entries()]
    .map(([key, n]) => {
      const [rule, action, tenant] = key.split('\u0000') as [string, string, string];
      return { rule, action, tenant, pods: n };
    })
    .sort((a, b) => (a.rule + a.tenant < b.rule + b.tenant ? -1 : 1));
  return { revision: policy.revision, checked, drifted, staleRevision, byRule };
}
