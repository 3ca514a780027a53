// The kube-scheduler extender wire format (k8s.io/kube-scheduler/extender/v1): Go field names, capitalised, no JSON
// tags. We emit exactly those names and read them case-insensitively, as Go's decoder does
// (shared/reference/k8s-protocols-and-mig.md §1.2).

import type { KubeNode, KubePod } from '../core/kube-objects.ts';

export interface ExtenderArgs {
  readonly pod: KubePod;
  /** Full node objects (nodeCacheCapable: false). */
  readonly nodes: KubeNode[] | null;
  /** Node names (nodeCacheCapable: true). */
  readonly nodeNames: string[] | null;
}

export interface ExtenderFilterResult {
  Nodes: { metadata: Record<string, never>; items: KubeNode[] } | null;
  NodeNames: string[] | null;
  FailedNodes: Record<string, string>;
  FailedAndUnresolvableNodes: Record<string, string>;
  Error: string;
}

export interface HostPriority {
  Host: string;
  Score: number;
}

export interface ExtenderBindingArgs {
  readonly podName: string;
  readonly podNamespace: string;
  readonly podUID: string;
  readonly node: string;
}

export interface MetaVictims {
  Pods: { UID: string }[];
  NumPDBViolations: number;
}

export interface ExtenderPreemptionArgs {
  readonly pod: KubePod;
  readonly nodeNameToMetaVictims: Record<string, MetaVictims> | null;
  readonly nodeNameToVictims: Record<string, { Pods: KubePod[]; NumPDBViolations: number }> | null;
}

/** Reads a field by its Go name, case-insensitively. */
function field(obj: Record<string, unknown>, name: string): unknown {
  if (name in obj) return obj[name];
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(obj)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

function asObject(body: unknown, what: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new WireError(`${what}: the body is not a JSON object`);
  return body as Record<string, unknown>;
}

export class WireError extends Error {
  override name = 'WireError';
}

export function parseExtenderArgs(body: unknown): ExtenderArgs {
  const obj = asObject(body, 'ExtenderArgs');
  const pod = field(obj, 'Pod');
  if (typeof pod !== 'object' || pod === null) throw new WireError('ExtenderArgs.Pod is missing');
  const nodes = field(obj, 'Nodes') as { items?: unknown } | null | undefined;
  const names = field(obj, 'NodeNames');
  if (names !== undefined && names !== null && (!Array.isArray(names) || names.some((n) => typeof n !== 'string')))
    throw new WireError('ExtenderArgs.NodeNames must be a list of names');
  if (nodes !== undefined && nodes !== null && !Array.isArray(nodes.items))
    throw new WireError('ExtenderArgs.Nodes must be a NodeList with items');
  if ((names === undefined || names === null) && (nodes === undefined || nodes === null))
    throw new WireError('ExtenderArgs has neither NodeNames nor Nodes');
  return {
    pod: pod as KubePod,
    nodes: nodes?.items ? (nodes.items as KubeNode[]) : null,
    nodeNames: (names as string[] | null | undefined) ?? null,
  };
}

export function parseBindingArgs(body: unknown): ExtenderBindingArgs {
  const obj = asObject(body, 'ExtenderBindingArgs');
  const get = (k: string) => {
    const v = field(obj, k);
    if (typeof v !== 'string' || v === '') throw new WireError(`ExtenderBindingArgs.${k} is missing`);
    return v;
  };
  return { podName: get('PodName'), podNamespace: get('PodNamespace'), podUID: get('PodUID'), node: get('Node') };
}

export function parsePreemptionArgs(body: unknown): ExtenderPreemptionArgs {
  const obj = asObject(body, 'ExtenderPreemptionArgs');
  const pod = field(obj, 'Pod');
  if (typeof pod !== 'object' || pod === null) throw new WireError('ExtenderPreemptionArgs.Pod is missing');
  const meta = field(obj, 'NodeNameToMetaVictims') as Record<string, MetaVictims> | null | undefined;
  const full = field(obj, 'NodeNameToVictims') as
    | Record<string, { Pods: KubePod[]; NumPDBViolations: number }>
    | null
    | undefined;
  return { pod: pod as KubePod, nodeNameToMetaVictims: meta ?? null, nodeNameToVictims: full ?? null };
}
