// The webhook's view of the cluster: namespaces (tenants) and pods (quota, audit), fed by informers. Tenant usage is
// kept incrementally from pod events, so that a quota check is a lookup. It is trusted only while the API server
// answers and both caches are synced from it (ClusterConnection); `problem()` says why not.

import { CoreV1Api, type KubeConfig, type V1Namespace, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ClusterView } from '../core/admission/cluster-view.ts';
import type { TenantUsage } from '../core/admission/tenant-usage.ts';
import { TenantUsageIndex } from '../core/admission/tenant-usage.ts';
import type { KubeNamespace, KubePod } from '../core/kube-objects.ts';
import { TENANT_LABEL } from '../core/well-known-names.ts';
import type { Policy } from '../core/policy/model.ts';
import { type ApiProbeOptions, ClusterConnection } from '../server/cluster-connection.ts';
import { WatchedResource } from '../server/watched-resource.ts';

export class ClusterCache implements ClusterView {
  readonly namespaces: WatchedResource<V1Namespace>;
  readonly pods: WatchedResource<V1Pod>;
  private readonly usage = new TenantUsageIndex((ns) => this.namespace(ns)?.metadata?.labels?.[TENANT_LABEL] || null);
  private readonly connection: ClusterConnection;

  constructor(kc: KubeConfig, log: Logger, probe: ApiProbeOptions = {}) {
    const core = kc.makeApiClient(CoreV1Api);
    this.namespaces = new WatchedResource<V1Namespace>(
      kc,
      '/api/v1/namespaces',
      () => core.listNamespace(),
      log,
      'namespaces',
    );
    this.pods = new WatchedResource<V1Pod>(kc, '/api/v1/pods', () => core.listPodForAllNamespaces(), log, 'pods');
    for (const event of ['add', 'update', 'delete'] as const) this.namespaces.on(event, () => this.usage.invalidate());
    this.pods.on('add', (p) => this.usage.upsertPod(p as KubePod));
    this.pods.on('update', (p) => this.usage.upsertPod(p as KubePod));
    this.pods.on('delete', (p) => this.usage.removePod(p as KubePod));
    this.connection = new ClusterConnection(kc, [this.namespaces, this.pods], log, probe);
  }

  /** Probes the API server and syncs the caches in the background; `problem()` says how far it got. */
  start(): void {
    this.connection.start();
  }

  /** Why the cache cannot be trusted now, or null. */
  problem(): string | null {
    return this.connection.problem();
  }

  synced(): boolean {
    return this.problem() === null;
  }

  async stop(): Promise<void> {
    await this.connection.stop();
  }

  namespace(name: string): KubeNamespace | undefined {
    return this.namespaces.get(name) as KubeNamespace | undefined;
  }

  allPods(): readonly KubePod[] {
    return this.pods.list() as readonly KubePod[];
  }

  tenantUsage(tenant: string, policy: Policy, exceptUid: string | null): TenantUsage {
    return this.usage.usage(tenant, policy, exceptUid);
  }
}
