// Renders charts/tessera with helm and manifests/base with kustomize (kubectl's), as parsed objects keyed by
// apiVersion/kind/namespace/name, for the tests that compare them and check the chart's values.

import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { ensureControlPlane } from '../controlplane/build.ts';
import { ensureHelm } from './build.ts';

export const CHART = fileURLToPath(new URL('../../charts/tessera', import.meta.url));
export const BASE = fileURLToPath(new URL('../../manifests/base', import.meta.url));

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: any;
}

export const keyOf = (o: KubeObject): string =>
  `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** Every document of a multi-document YAML stream that holds an object (helm leaves empty ones between templates). */
export function parseObjects(text: string): KubeObject[] {
  const docs = parseAllDocuments(text);
  for (const d of docs) if (d.errors.length > 0) throw new Error(`invalid YAML: ${d.errors[0]!.message}`);
  return docs.map((d) => d.toJS() as KubeObject | null).filter((o): o is KubeObject => o !== null);
}

/** Objects by key; a key rendered twice is an error (it would be one object on the API server). */
export function byKey(objects: readonly KubeObject[]): Map<string, KubeObject> {
  const map = new Map<string, KubeObject>();
  for (const o of objects) {
    const k = keyOf(o);
    if (map.has(k)) throw new Error(`${k} is rendered twice`);
    map.set(k, o);
  }
  return map;
}

export function helmBinary(log?: (line: string) => void): string {
  return ensureHelm(log).helm;
}

export interface HelmResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs helm with `args` (no cluster is contacted by template and lint). */
export function helm(args: readonly string[], log?: (line: string) => void): HelmResult {
  const r = spawnSync(helmBinary(log), args, {
    encoding: 'utf8',
    // No helm configuration of the machine's user leaks in (repositories, plugins, registry logins).
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '/nonexistent',
      HELM_CONFIG_HOME: '/nonexistent/helm-config',
      HELM_DATA_HOME: '/nonexistent/helm-data',
      HELM_CACHE_HOME: '/nonexistent/helm-cache',
      KUBECONFIG: '/nonexistent/kubeconfig',
    },
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `helm template tessera charts/tessera -n NAMESPACE ARGS...`, parsed; throws with helm's message when it fails. */
export function renderChart(args: readonly string[] = [], namespace = 'tessera-system'): KubeObject[] {
  const r = helm(['template', 'tessera', CHART, '--namespace', namespace, ...args]);
  if (r.status !== 0) throw new Error(`helm template ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return parseObjects(r.stdout);
}

/** The kustomize base as `kubectl kustomize manifests/base` renders it. */
export function renderBase(): KubeObject[] {
  const kubectl = ensureControlPlane().kubectl;
  return parseObjects(execFileSync(kubectl, ['kustomize', BASE], { encoding: 'utf8' }));
}
