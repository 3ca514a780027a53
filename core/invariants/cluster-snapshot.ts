// The cluster snapshot of DESIGN.md ("A living cluster"): Node, Pod and Namespace objects as the API lists them, with the
// time they were listed. Soaks and live benchmarks write them; anyone can check them without trusting Tessera.

import type { KubeNamespace, KubeNode, KubePod } from '../kube-objects.ts';

export interface ClusterSnapshot {
  /** RFC 3339. */
  readonly time: string;
  readonly nodes: readonly KubeNode[];
  readonly pods: readonly KubePod[];
  readonly namespaces: readonly KubeNamespace[];
}

/** Reads a snapshot from parsed JSON; says what is missing instead of guessing. */
export function readClusterSnapshot(raw: unknown): ClusterSnapshot | string {
  const o = raw as Partial<Record<keyof ClusterSnapshot, unknown>> | null;
  if (typeof o !== 'object' || o === null) return 'a snapshot is a JSON object {"time", "nodes", "pods", "namespaces"}';
  for (const key of ['nodes', 'pods', 'namespaces'] as const) {
    if (!Array.isArray(o[key])) return `snapshot field "${key}" must be an array of ${key} as the API lists them`;
  }
  if (typeof o.time !== 'string' || Number.isNaN(Date.parse(o.time)))
    return 'snapshot field "time" must be an RFC 3339 time';
  return o as ClusterSnapshot;
}
