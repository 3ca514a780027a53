// The kubelet's PodResources API (podresources/v1 List on /var/lib/kubelet/pod-resources/kubelet.sock): which pods the
// kubelet holds and which devices of one resource each container has been given. No RBAC: the socket is the boundary.

import * as grpc from '@grpc/grpc-js';
import type { ListedPod } from '../core/node-agent/admitting-pod.ts';
import { PodResourcesLister, unary, unixAddress, type WirePodResources } from './kubelet-protos.ts';

export class PodResourcesClient {
  private client: grpc.Client | null = null;
  private readonly socket: string;
  private readonly timeoutMs: number;

  constructor(socket: string, timeoutMs = 5_000) {
    this.socket = socket;
    this.timeoutMs = timeoutMs;
  }

  private connect(): grpc.Client {
    this.client ??= new PodResourcesLister(unixAddress(this.socket), grpc.credentials.createInsecure());
    return this.client;
  }

  /** Every pod the kubelet lists, with each container's count of `resource` devices. */
  async list(resource: string): Promise<ListedPod[]> {
    let answer: { pod_resources: WirePodResources[] };
    try {
      answer = await unary(this.connect(), 'List', {}, this.timeoutMs);
    } catch (e) {
      // A kubelet restart leaves a dead channel behind: reconnect next time.
      this.close();
      throw e;
    }
    return (answer.pod_resources ?? []).map((p) => ({
      namespace: p.namespace,
      name: p.name,
      containers: (p.containers ?? []).map((c) => ({
        name: c.name,
        devices: (c.devices ?? [])
          .filter((d) => d.resource_name === resource)
          .reduce((n, d) => n + (d.device_ids?.length ?? 0), 0),
      })),
    }));
  }

  close(): void {
    this.client?.close();
    this.client = null;
  }
}
