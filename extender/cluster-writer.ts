// The writes the extender makes to the API server, behind an interface so that bind's commit protocol is tested with
// a fake and run against the real API server unchanged. They sit on bind's critical path, so they go over one
// keep-alive HTTPS agent (the generated client opens a new TLS connection per request, which cost 2/3 of the
// scheduler's throughput in the scheduler benchmark). A bind is one call: the Binding carries the assignment
// annotations, and kube-apiserver copies them onto the pod in the same update that sets spec.nodeName.

import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import { request as httpRequest, Agent as HttpAgent } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubePod } from '../core/kube-objects.ts';
import { KubeApiError as ApiError } from '../server/kube-json.ts';

export class ConflictError extends Error {
  override name = 'ConflictError';
}

/** The API server refused or could not answer (`status` 0: no answer): server/kube-json.ts's one API error. */
export { ApiError };

export interface ClusterWriter {
  readPod(namespace: string, name: string): Promise<KubePod | null>;
  /**
   * Creates the pod's Binding to `node` carrying `annotations` (pods/binding): the pod gets spec.nodeName and the
   * annotations in one update, or nothing. `uid` is a precondition; ConflictError (409) when the pod was recreated
   * (another UID), is already bound, or is being deleted.
   */
  bindPod(
    namespace: string,
    name: string,
    uid: string,
    node: string,
    annotations: Readonly<Record<string, string>>,
  ): Promise<void>;
  /** Sets status.capacity and status.allocatable entries of a node. */
  setNodeResources(node: string, resources: Record<string, string>): Promise<void>;
  /** Sets a label on a pod, or removes it (null): the extender's own pod, for the Service (role-label.ts). */
  labelPod(namespace: string, name: string, key: string, value: string | null): Promise<void>;
}

const MERGE = 'application/merge-patch+json';

export function kubernetesWriter(kc: KubeConfig): ClusterWriter {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig names no cluster server');
  const base = new URL(server);
  const secure = base.protocol === 'https:';
  let prepared: Promise<RequestOptions> | null = null;
  // Credentials and TLS settings are read once; the agent keeps connections to the API server open.
  const options = (): Promise<RequestOptions> => {
    prepared ??= (async () => {
      const opts: RequestOptions = { headers: {} };
      await kc.applyToHTTPSOptions(opts);
      const agentOptions = {
        keepAlive: true,
        maxSockets: 64,
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        rejectUnauthorized: opts.rejectUnauthorized,
      };
      opts.agent = secure ? new Agent(agentOptions) : new HttpAgent({ keepAlive: true, maxSockets: 64 });
      return opts;
    })();
    return prepared;
  };
  const call = async (
    method: string,
    path: string,
    body: unknown,
    contentType = 'application/json',
  ): Promise<{ status: number; json: unknown }> => {
    const opts = await options();
    const data = body === undefined ? undefined : JSON.stringify(body);
    const url = new URL(path, base);
    return new Promise((resolve, reject) => {
      const req = (secure ? httpsRequest : httpRequest)(
        url,
        {
          ...opts,
          method,
          headers: {
            ...(opts.headers as Record<string, string>),
            accept: 'application/json',
            ...(data ? { 'content-type': contentType, 'content-length': String(Buffer.byteLength(data)) } : {}),
          },
          timeout: 10_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let json: unknown = null;
            try {
              json = text ? JSON.parse(text) : null;
            } catch {
              json = text;
            }
            resolve({ status: res.statusCode ?? 0, json });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      req.end(data);
    });
  };
  const ensure = (r: { status: number; json: unknown }, what: string): unknown => {
    if (r.status >= 200 && r.status < 300) return r.json;
    const message = (r.json as { message?: string } | null)?.message ?? `HTTP ${r.status}`;
    if (r.status === 409) throw new ConflictError(`${what}: ${message}`);
    throw new ApiError(r.status, `${what}: ${message}`);
  };
  const podPath = (ns: string, name: string) =>
    `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(name)}`;
  return {
    async readPod(namespace, name) {
      const r = await call('GET', podPath(namespace, name), undefined);
      if (r.status === 404) return null;
      return ensure(r, `read pod ${namespace}/${name}`) as KubePod;
    },
    async bindPod(namespace, name, uid, node, annotations) {
      const r = await call('POST', `${podPath(namespace, name)}/binding`, {
        apiVersion: 'v1',
        kind: 'Binding',
        metadata: { name, namespace, uid, ...(Object.keys(annotations).length > 0 ? { annotations } : {}) },
        target: { apiVersion: 'v1', kind: 'Node', name: node },
      });
      ensure(r, `bind pod ${namespace}/${name} to ${node}`);
    },
    async setNodeResources(node, resources) {
      const r = await call(
        'PATCH',
        `/api/v1/nodes/${encodeURIComponent(node)}/status`,
        { status: { capacity: resources, allocatable: resources } },
        MERGE,
      );
      ensure(r, `set resources of node ${node}`);
    },
    async labelPod(namespace, name, key, value) {
      const r = await call('PATCH', podPath(namespace, name), { metadata: { labels: { [key]: value } } }, MERGE);
      ensure(r, `label pod ${namespace}/${name} ${key}=${value ?? '(removed)'}`);
    },
  };
}
