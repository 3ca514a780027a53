// Reading Kubernetes objects from files the way kubectl writes them: a List (YAML or JSON), multi-document YAML, or a
// single object. Used for policy-test contexts, `policy apply --context` and explain/audit snapshots.

import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { KubeNamespace, KubeNode, KubePod } from '../core/kube-objects.ts';

export interface ObjectSet {
  readonly namespaces: KubeNamespace[];
  readonly pods: KubePod[];
  readonly nodes: KubeNode[];
  readonly other: unknown[];
}

function flatten(value: unknown, out: unknown[]): void {
  if (value === null || typeof value !== 'object') return;
  const obj = value as { kind?: string; items?: unknown[] };
  if (Array.isArray(obj.items) && (obj.kind === 'List' || obj.kind?.endsWith('List'))) {
    for (const item of obj.items) flatten(item, out);
  } else if (Array.isArray(value)) {
    for (const item of value) flatten(item, out);
  } else out.push(value);
}

export function parseObjects(text: string, source: string): unknown[] {
  const out: unknown[] = [];
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      flatten(JSON.parse(trimmed), out);
      return out;
    } catch (e) {
      throw new Error(`${source}: not valid JSON (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: not valid YAML (${doc.errors[0]!.message.split('\n')[0]})`);
    flatten(doc.toJS(), out);
  }
  return out;
}

export function sortObjects(objects: readonly unknown[]): ObjectSet {
  const set: ObjectSet = { namespaces: [], pods: [], nodes: [], other: [] };
  for (const o of objects) {
    const kind = (o as { kind?: string }).kind;
    if (kind === 'Namespace') set.namespaces.push(o as KubeNamespace);
    else if (kind === 'Pod') set.pods.push(o as KubePod);
    else if (kind === 'Node') set.nodes.push(o as KubeNode);
    else set.other.push(o);
  }
  return set;
}

export function readObjects(path: string): ObjectSet {
  return sortObjects(parseObjects(readFileSync(path, 'utf8'), path));
}
