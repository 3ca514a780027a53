// The writes the extender makes to the API server, behind an interface so that bind's commit protocol is tested with
// a fake and run against the real API server unchanged.

import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { KubePod } from '../core/kube-objects.ts';

export class ConflictError extends Error {
  override name = 'ConflictError';
}

export interface ClusterWriter {
  readPod(namespace: string, name: string): Promise<KubePod | null>;
  /** Sets (string) or removes (null) annotations; fails with ConflictError when the pod changed since resourceVersion. */
  annotatePod(namespace: string, name: string, resourceVersion: string, annotations: Record<string, string | null>): Promise<KubePod>;
  bindPod(namespace: string, name: string, uid: string, node: string): Promise<void>;
  /** Sets status.capacity and status.allocatable entries of a node. */
  setNodeResources(node: string, resources: Record<string, string>): Promise<void>;
}

function statusOf(e: unknown): number | undefined {
  const err = e as { code?: number; statusCode?: number; response?: { statusCode?: number }; body?: unknown };
  return err.code ?? err.statusCode ?? err.response?.statusCode;
}

export function kubernetesWriter(kc: KubeConfig): ClusterWriter {
  const core = kc.makeApiClient(CoreV1Api);
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  return {
    async readPod(namespace, name) {
      try {
        return (await core.readNamespacedPod({ name, namespace })) as KubePod;
      } catch (e) {
        if (statusOf(e) === 404) return null;
        throw e;
      }
    },
    async annotatePod(namespace, name, resourceVersion, annotations) {
      try {
        return (await core.patchNamespacedPod({ name, namespace, body: { metadata: { resourceVersion, annotations } } }, merge)) as KubePod;
      } catch (e) {
        if (statusOf(e) === 409) throw new ConflictError(`pod ${namespace}/${name} changed since resourceVersion ${resourceVersion}`);
        throw e;
      }
    },
    async bindPod(namespace, name, uid, node) {
      await core.createNamespacedPodBinding({ name, namespace, body: { apiVersion: 'v1', kind: 'Binding', metadata: { name, namespace, uid }, target: { apiVersion: 'v1', kind: 'Node', name: node } } });
    },
    async setNodeResources(node, resources) {
      await core.patchNodeStatus({ name: node, body: { status: { capacity: resources, allocatable: resources } } }, merge);
    },
  };
}
