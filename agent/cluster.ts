// The agent's reads and writes of the API: its node's pods (a list-watch narrowed to spec.nodeName=<node>), one pod
// by name when the cache has not seen it yet, its own node's labels, and Events on pods. These are all the agent's
// RBAC allows (manifests/base/node-agent.yaml).

import { CoreV1Api, type KubeConfig, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeNode, KubePod } from '../core/kube-objects.ts';
import { describeApiError, WatchedResource } from '../server/watched-resource.ts';

export interface AgentCluster {
  /** The pods bound to this node. */
  readonly pods: WatchedResource<V1Pod>;
  /** One pod from the API (undefined when it does not exist). */
  readPod(namespace: string, name: string): Promise<KubePod | undefined>;
  readNode(): Promise<KubeNode | undefined>;
  /** Sets (string) or removes (null) labels of this node. */
  labelNode(labels: Record<string, string | null>): Promise<void>;
  /** Records a core/v1 Event on a pod; never throws (an event is worth a log line, not a failure). */
  podEvent(pod: KubePod, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

const notFound = (e: unknown) => (e as { code?: unknown })?.code === 404;

export function kubernetesAgentCluster(kc: KubeConfig, nodeName: string, log: Logger): AgentCluster {
  const core = kc.makeApiClient(CoreV1Api);
  const fieldSelector = `spec.nodeName=${nodeName}`;
  const pods = new WatchedResource<V1Pod>(
    kc,
    '/api/v1/pods',
    () => core.listPodForAllNamespaces({ fieldSelector }),
    log,
    'pods',
    { fieldSelector },
  );
  let eventSeq = 0;
  return {
    pods,
    async readPod(namespace, name) {
      try {
        return (await core.readNamespacedPod({ namespace, name })) as KubePod;
      } catch (e) {
        if (notFound(e)) return undefined;
        throw new Error(`reading pod ${namespace}/${name}: ${describeApiError(e)}`);
      }
    },
    async readNode() {
      try {
        return (await core.readNode({ name: nodeName })) as KubeNode;
      } catch (e) {
        if (notFound(e)) return undefined;
        throw new Error(`reading node ${nodeName}: ${describeApiError(e)}`);
      }
    },
    async labelNode(labels) {
      try {
        await core.patchNode(
          { name: nodeName, body: { metadata: { labels } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      } catch (e) {
        throw new Error(`labelling node ${nodeName}: ${describeApiError(e)}`);
      }
    },
    async podEvent(pod, type, reason, message) {
      const namespace = pod.metadata?.namespace ?? 'default';
      const now = new Date().toISOString();
      try {
        await core.createNamespacedEvent({
          namespace,
          body: {
            metadata: {
              name: `${pod.metadata?.name ?? 'pod'}.tessera-${Date.now().toString(36)}${(eventSeq++).toString(36)}`,
              namespace,
            },
            involvedObject: {
              kind: 'Pod',
              apiVersion: 'v1',
              namespace,
              name: pod.metadata?.name ?? '',
              ...(pod.metadata?.uid ? { uid: pod.metadata.uid } : {}),
            },
            type,
            reason,
            message: message.slice(0, 1000),
            source: { component: 'tessera-node-agent', host: nodeName },
            reportingComponent: 'tessera.io/node-agent',
            reportingInstance: nodeName,
            firstTimestamp: now as unknown as Date,
            lastTimestamp: now as unknown as Date,
            count: 1,
          },
        });
      } catch (e) {
        log.warn(
          { pod: `${namespace}/${pod.metadata?.name}`, reason, err: describeApiError(e) },
          'could not record an event',
        );
      }
    },
    start: () => pods.start(),
    stop: () => pods.stop(),
  };
}
