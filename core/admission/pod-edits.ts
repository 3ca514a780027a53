// Small, idempotent edits of a pod spec that mutation composes: each leaves a pod that already has the edit unchanged,
// so that `reinvocationPolicy: IfNeeded` produces no second patch.

import type { EnvVar, KubeContainer, PodSpec, Toleration } from '../kube-objects.ts';

export const VISIBLE_DEVICES_ENV = 'NVIDIA_VISIBLE_DEVICES';

export function hasEnv(c: KubeContainer, name: string): boolean {
  return (c.env ?? []).some((e) => e.name === name);
}

export function ensureEnv(c: KubeContainer, env: EnvVar): void {
  if (hasEnv(c, env.name)) return;
  c.env = [...(c.env ?? []), env];
}

interface Requirement {
  key: string;
  operator: string;
  values?: string[];
}

interface Term {
  matchExpressions?: Requirement[];
  matchFields?: unknown[];
}

function hasRequirement(term: Term, key: string, value: string): boolean {
  return (term.matchExpressions ?? []).some(
    (r) => r.key === key && r.operator === 'In' && r.values?.length === 1 && r.values[0] === value,
  );
}

/**
 * Adds the pool's labels to the pod's required node affinity. Terms are ORed by Kubernetes, so the pool's expressions
 * are added to every existing term (AND within each); the user's own terms and preferences are kept.
 */
export function requireNodeLabels(spec: PodSpec, labels: Readonly<Record<string, string>>): void {
  const affinity = (spec.affinity ??= {}) as {
    nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms?: Term[] } };
  };
  const nodeAffinity = (affinity.nodeAffinity ??= {});
  const required = (nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution ??= {});
  const terms = (required.nodeSelectorTerms ??= []);
  if (terms.length === 0) terms.push({ matchExpressions: [] });
  for (const term of terms) {
    for (const [key, value] of Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (!hasRequirement(term, key, value))
        (term.matchExpressions ??= []).push({ key, operator: 'In', values: [value] });
    }
  }
}

/** Whether every required node-affinity term (or the nodeSelector) pins the pod to these labels. */
export function pinnedToLabels(spec: PodSpec, labels: Readonly<Record<string, string>>): boolean {
  const selector = spec.nodeSelector ?? {};
  const required =
    (
      spec.affinity as
        | { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms?: Term[] } } }
        | undefined
    )?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  return Object.entries(labels).every(
    ([k, v]) => selector[k] === v || (required.length > 0 && required.every((term) => hasRequirement(term, k, v))),
  );
}

export function tolerates(t: Toleration, taint: { key: string; value?: string; effect: string }): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.operator === 'Exists') return t.key === undefined || t.key === '' || t.key === taint.key;
  return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
}

export function ensureToleration(spec: PodSpec, taint: { key: string; value?: string; effect: string }): void {
  const tolerations = (spec.tolerations ??= []);
  if (
    tolerations.some(
      (t) =>
        t.key === taint.key &&
        (t.operator ?? 'Equal') === 'Equal' &&
        (t.value ?? '') === (taint.value ?? '') &&
        t.effect === taint.effect,
    )
  )
    return;
  tolerations.push({ key: taint.key, operator: 'Equal', value: taint.value ?? '', effect: taint.effect });
}

export function allContainers(spec: PodSpec): KubeContainer[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];
}
