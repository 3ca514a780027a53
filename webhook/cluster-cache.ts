// The webhook's view of the cluster: namespaces (tenants) and pods (quota, audit), fed by informers. Tenant usage is
// kept per pod so that a quota check costs a sum over the tenant's pods, not a re-read of every pod's demand.

import { CoreV1Api, type KubeConfig, type V1Namespace, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { isTerminated, type ClusterView, type TenantUsage } from '../core/admission/cluster-view.ts';
import { podEquivalents } from '../core/admission/equivalents.ts';
import type { KubeNamespace, KubePod } from '../core/kube-objects.ts';
import { TENANT_LABEL } from '../core/names.ts';
import type { Policy } from '../core/policy/model.ts';
import { WatchedResource } from './informer.ts';

interface Weighed {
  revision: string;
  equivalents: number;
}

export class ClusterCache implements ClusterView {
  readonly namespaces: WatchedResource<V1Namespace>;
  readonly pods: WatchedResource<V1Pod>;
  private readonly weights = new WeakMap<object, Weighed>();

  constructor(kc: KubeConfig, log: Logger) {
    const core = kc.makeApiClient(CoreV1Api);
    this.namespaces = new WatchedResource<V1Namespace>(kc, '/api/v1/namespaces', () => core.listNamespace(), log, 'namespaces');
    this.pods = new WatchedResource<V1Pod>(kc, '/api/v1/pods', () => core.listPodForAllNamespaces(), log, 'pods');
  }

  async start(): Promise<void> {
    await Promise.all([this.namespaces.start(), this.pods.start()]);
  }

  synced(): boolean {
    return this.namespaces.synced && this.pods.synced;
  }

  async stop(): Promise<void> {
    await Promise.all([this.namespaces.stop(), this.pods.stop()]);
  }

  namespace(name: string): KubeNamespace | undefined {
    return this.namespaces.get(name) as KubeNamespace | undefined;
  }

  *tenantPods(tenant: string): Iterable<KubePod> {
    const names = new Set(this.namespaces.list().filter((n) => n.metadata?.labels?.[TENANT_LABEL] === tenant).map((n) => n.metadata?.name));
    for (const p of this.pods.list() as readonly KubePod[]) {
      if (!names.has(p.metadata?.namespace) || isTerminated(p) || p.metadata?.deletionTimestamp) continue;
      yield p;
    }
  }

  allPods(): readonly KubePod[] {
    return this.pods.list() as readonly KubePod[];
  }

  tenantUsage(tenant: string, policy: Policy, exceptUid: string | null): TenantUsage {
    let equivalents = 0;
    let pods = 0;
    for (const p of this.tenantPods(tenant)) {
      if (exceptUid !== null && p.metadata?.uid === exceptUid) continue;
      // Informer objects are replaced on every update, so object identity is a safe cache key.
      let w = this.weights.get(p);
      if (!w || w.revision !== policy.revision) {
        w = { revision: policy.revision, equivalents: podEquivalents(p, policy) };
        this.weights.set(p, w);
      }
      if (w.equivalents > 0) {
        equivalents += w.equivalents;
        pods++;
      }
    }
    return { equivalents, pods };
  }
}
