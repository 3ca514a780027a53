// Starts the admission webhook: policy store (hot reload), informer caches, HTTPS with certificate reload, metrics
// and the periodic drift audit. `tessera serve webhook` and the tests call startWebhook.

import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ClusterView } from '../core/admission/cluster-view.ts';
import type { KubePod } from '../core/kube-objects.ts';
import { type ApiProbeOptions, ClusterUnavailableError } from '../server/cluster-connection.ts';
import { PolicyStore } from '../server/policy-store.ts';
import { serve, type Serving } from '../server/serve.ts';
import { checkTls, type TlsFiles } from '../server/tls-files.ts';
import { createWebhookApp } from './app.ts';
import { ClusterCache } from './cluster-cache.ts';
import { scheduleDriftAudit } from './drift-audit.ts';
import { policyReportWriter } from './policy-reports.ts';
import { WebhookMetrics } from './metrics.ts';
import { QuotaReserver } from './quota-reserver.ts';
import { kubernetesReservationStore } from './reservation-store.ts';

export interface WebhookOptions {
  readonly policyDir: string;
  /** Keeps the last good policy files across restarts (an emptyDir): see server/policy-store.ts. */
  readonly policyCacheDir?: string;
  readonly host?: string;
  readonly port?: number;
  /** Serve HTTPS with these files (reloaded on change); plain HTTP without (tests and benchmarks only). */
  readonly tls?: TlsFiles;
  /** Cluster access; when absent, `view` must be given. */
  readonly kubeconfig?: KubeConfig;
  readonly view?: ClusterView;
  readonly systemUsers: readonly string[];
  /** KubeVirt's virt-controller identities (default: core/kubevirt/launcher.ts KUBEVIRT_CONTROLLER_USERS). */
  readonly kubevirtUsers?: readonly string[];
  /** Reads a pod from the API server; defaults to the cluster cache's when a kubeconfig is given. */
  readonly readPod?: (namespace: string, name: string) => Promise<KubePod | null>;
  readonly auditIntervalMs?: number;
  /**
   * Where GPU pods' quota is reserved before admission (the ConfigMap tessera-quota-reservations in this namespace),
   * with a kubeconfig; `false` judges quota on the informer alone (single replica, or tests of that path).
   */
  readonly quotaReservations?: { readonly namespace: string; readonly ttlMs?: number } | false;
  /** How the API server is probed (see server/cluster-connection.ts); tests shorten it. */
  readonly apiProbe?: ApiProbeOptions;
  readonly log: Logger;
}

export interface RunningWebhook {
  readonly url: string;
  readonly port: number;
  readonly metrics: WebhookMetrics;
  readonly policies: PolicyStore;
  /** The API server answers, the caches are synced from it, and a policy is in force: what /readyz reports. */
  ready(): boolean;
  close(): Promise<void>;
}

export async function startWebhook(options: WebhookOptions): Promise<RunningWebhook> {
  const { log } = options;
  // Everything that can be checked is checked before anything starts, so that a bad start leaves nothing running.
  if (!options.kubeconfig && !options.view) throw new Error('startWebhook needs a kubeconfig or a view');
  if (options.tls) checkTls(options.tls);
  const metrics = new WebhookMetrics();
  const policies = loadPolicy(options.policyDir, options.policyCacheDir ?? null, metrics, log);
  const cluster = watchCluster(options);
  const readPod =
    options.readPod ??
    (cluster.cache ? (namespace: string, name: string) => cluster.cache!.readPod(namespace, name) : null);
  const reservations = options.quotaReservations ?? { namespace: 'tessera-system' };
  const reserver =
    options.kubeconfig && reservations !== false
      ? new QuotaReserver({
          store: kubernetesReservationStore(options.kubeconfig, reservations.namespace),
          log,
          metrics,
          ...(reservations.ttlMs !== undefined ? { ttlMs: reservations.ttlMs } : {}),
        })
      : undefined;
  let serving: Serving;
  try {
    const app = createWebhookApp({
      policies,
      view: cluster.view,
      clusterProblem: cluster.problem,
      config: {
        systemUsers: options.systemUsers,
        ...(options.kubevirtUsers ? { kubevirtUsers: options.kubevirtUsers } : {}),
      },
      metrics,
      log,
      ...(readPod ? { readPod } : {}),
      ...(reserver ? { reserver } : {}),
    });
    serving = await serve(app, {
      host: options.host ?? '0.0.0.0',
      port: options.port ?? 8443,
      ...(options.tls ? { tls: options.tls } : {}),
      log,
      onCertificateExpiry: (s) => metrics.certificateExpiry.set(s),
    });
  } catch (e) {
    policies.close();
    await cluster.cache?.stop();
    throw e;
  }
  const { cache } = cluster;
  const stopAudit =
    cache && options.kubeconfig
      ? scheduleDriftAudit(
          cache,
          policies,
          metrics,
          log,
          options.auditIntervalMs ?? 60_000,
          policyReportWriter(options.kubeconfig, log),
        )
      : () => {};
  const { url, port } = serving;
  log.info({ url, policyDir: options.policyDir, revision: policies.status().revision }, 'webhook serving');
  return {
    url,
    port,
    metrics,
    policies,
    ready: () => cluster.problem() === null && policies.current() !== null,
    async close() {
      stopAudit();
      policies.close();
      await serving.close();
      await cache?.stop();
    },
  };
}

/** The policy files, hot-reloaded, with their state mirrored in the metrics. */
function loadPolicy(dir: string, cacheDir: string | null, metrics: WebhookMetrics, log: Logger): PolicyStore {
  const policies = new PolicyStore(dir, log, cacheDir);
  const track = () => metrics.setPolicy(policies.status().state, policies.status().revision);
  policies.on('change', track);
  policies.on('rejected', () => {
    metrics.policyRejections.inc();
    track();
  });
  policies.reload();
  track();
  policies.watch();
  return policies;
}

interface ClusterWatch {
  /** What admission reads; it throws ClusterUnavailableError while the cluster cannot be trusted. */
  readonly view: ClusterView;
  /** Why the cluster view cannot be trusted now (phrased to follow "Tessera "), or null. */
  readonly problem: () => string | null;
  /** The informer caches, when the webhook watches a real cluster (the drift audit reads them). */
  readonly cache: ClusterCache | null;
}

/** Informer caches from the kubeconfig, or the view the caller gives (tests and benchmarks). */
function watchCluster(options: WebhookOptions): ClusterWatch {
  if (options.kubeconfig) {
    const cache = new ClusterCache(options.kubeconfig, options.log, options.apiProbe);
    // Readiness waits for the sync; serving starts at once so that probes can answer and admission can say why not.
    cache.start();
    return { view: failClosed(cache), problem: () => cache.problem(), cache };
  }
  return { view: options.view!, problem: () => null, cache: null };
}

/**
 * The cache as admission reads it: while the API server is lost or a cache is not synced, a request that needs the
 * cluster's state is refused with the true reason rather than judged on empty or stale caches (an empty namespace
 * cache would deny every tenant pod for "no tessera.io/tenant label"; an empty pod cache would lift every quota).
 */
function failClosed(cache: ClusterCache): ClusterView {
  const check = () => {
    const problem = cache.problem();
    if (problem !== null)
      throw new ClusterUnavailableError(
        `Tessera ${problem}; it needs the cluster's namespaces and pods to decide this request, so the request is denied (fail closed); retry once the API server is reachable`,
      );
  };
  return {
    namespace(name) {
      check();
      return cache.namespace(name);
    },
    pod(namespace, name) {
      check();
      return cache.pod(namespace, name);
    },
    tenantUsage(tenant, policy, exceptUid) {
      check();
      return cache.tenantUsage(tenant, policy, exceptUid);
    },
    get dra() {
      check();
      return cache.dra;
    },
    podGone: (uid) => cache.podGone(uid),
  };
}
