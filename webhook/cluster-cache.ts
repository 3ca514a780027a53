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
import { listInPages } from '../server/paged-list.ts';
import { WatchedResource } from '../server/watched-resource.ts';
import { watchDra, type DraWatch } from '../server/dra-objects.ts';
import type { DraLookup } from '../core/dra/lookup.ts';
import type { KubeDeviceClass, KubeResourceClaim, KubeResourceClaimTemplate } from '../core/dra/objects.ts';

const GONE_KEPT = 50_000;

export class ClusterCache implements ClusterView {
  readonly namespaces: WatchedResource<V1Namespace>;
  readonly pods: WatchedResource<V1Pod>;
  private readonly core: CoreV1Api;
  /** DRA: the classes, claims and templates that pods name (admission resolves spec.resourceClaims from these). */
  readonly deviceClasses: DraWatch;
  readonly resourceClaims: DraWatch;
  readonly resourceClaimTemplates: DraWatch;
  readonly dra: DraLookup;
  private readonly usage: TenantUsageIndex;
  private readonly connection: ClusterConnection;
  /** UIDs of pods seen deleted, oldest first: a quota reservation of such a pod holds nothing any more. */
  private readonly gone = new Set<string>();

  constructor(kc: KubeConfig, log: Logger, probe: ApiProbeOptions = {}) {
    const core = kc.makeApiClient(CoreV1Api);
    this.core = core;
    this.namespaces = new WatchedResource<V1Namespace>(
      kc,
      '/api/v1/namespaces',
      () => core.listNamespace(),
      log,
      'namespaces',
    );
    this.pods = new WatchedResource<V1Pod>(
      kc,
      '/api/v1/pods',
      () => listInPages((p) => core.listPodForAllNamespaces(p)),
      log,
      'pods',
    );
    this.deviceClasses = watchDra(kc, 'deviceclasses', log);
    this.resourceClaims = watchDra(kc, 'resourceclaims', log);
    this.resourceClaimTemplates = watchDra(kc, 'resourceclaimtemplates', log);
    this.dra = {
      deviceClass: (name) => this.deviceClasses.get(name) as KubeDeviceClass | undefined,
      deviceClasses: () => this.deviceClasses.list() as readonly KubeDeviceClass[],
      resourceClaim: (namespace, name) => this.resourceClaims.get(name, namespace) as KubeResourceClaim | undefined,
      resourceClaimTemplate: (namespace, name) =>
        this.resourceClaimTemplates.get(name, namespace) as KubeResourceClaimTemplate | undefined,
    };
    this.usage = new TenantUsageIndex((ns) => this.namespace(ns)?.metadata?.labels?.[TENANT_LABEL] || null, this.dra);
    // Which classes reach GPUs decides what pods weigh; a deleted template leaves pods to their generated claims.
    for (const event of ['add', 'update', 'delete'] as const)
      this.deviceClasses.on(event, () => this.usage.invalidate());
    this.resourceClaimTemplates.on('delete', () => this.usage.invalidate());
    for (const event of ['add', 'update', 'delete'] as const) this.namespaces.on(event, () => this.usage.invalidate());
    this.pods.on('add', (p) => this.usage.upsertPod(p as KubePod));
    this.pods.on('update', (p) => this.usage.upsertPod(p as KubePod));
    this.pods.on('delete', (p) => {
      this.usage.removePod(p as KubePod);
      this.recordGone((p as KubePod).metadata?.uid);
    });
    // DRA objects first, so that the pods' first quota count resolves their claims.
    this.connection = new ClusterConnection(
      kc,
      [this.deviceClasses, this.resourceClaims, this.resourceClaimTemplates, this.namespaces, this.pods],
      log,
      probe,
    );
  }

  podGone(uid: string): boolean {
    return this.gone.has(uid);
  }

  private recordGone(uid: string | undefined): void {
    if (!uid) return;
    this.gone.add(uid);
    // Reservations expire within a minute; this keeps far more deletions than a minute brings.
    if (this.gone.size > GONE_KEPT) this.gone.delete(this.gone.values().next().value as string);
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

  pod(namespace: string, name: string): KubePod | undefined {
    return this.pods.get(name, namespace) as KubePod | undefined;
  }

  /** The pod as the API server has it now, or null when there is none (the informer may lag behind). */
  async readPod(namespace: string, name: string): Promise<KubePod | null> {
    try {
      return (await this.core.readNamespacedPod({ name, namespace })) as KubePod;
    } catch (e) {
      if ((e as { code?: number }).code === 404) return null;
      throw e;
    }
  }

  allPods(): readonly KubePod[] {
    return this.pods.list() as readonly KubePod[];
  }

  tenantUsage(tenant: string, policy: Policy, exceptUid: string | null): TenantUsage {
    return this.usage.usage(tenant, policy, exceptUid);
  }
}
