// Starts the admission webhook: policy store (hot reload), informer caches, HTTPS with certificate reload, metrics
// and the periodic drift audit. `tessera serve webhook` and the tests call startWebhook.

import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ClusterView } from '../core/admission/cluster-view.ts';
import type { KubePod } from '../core/kube-objects.ts';
import { PolicyStore } from '../server/policy-store.ts';
import { serve } from '../server/serve.ts';
import type { TlsFiles } from '../server/tls-files.ts';
import { createWebhookApp } from './app.ts';
import { ClusterCache } from './cluster-cache.ts';
import { scheduleDriftAudit } from './drift-audit.ts';
import { policyReportWriter } from './policy-reports.ts';
import { WebhookMetrics } from './metrics.ts';

export interface WebhookOptions {
  readonly policyDir: string;
  readonly host?: string;
  readonly port?: number;
  /** Serve HTTPS with these files (reloaded on change); plain HTTP without (tests and benchmarks only). */
  readonly tls?: TlsFiles;
  /** Cluster access; when absent, `view` must be given. */
  readonly kubeconfig?: KubeConfig;
  readonly view?: ClusterView;
  readonly systemUsers: readonly string[];
  /** Reads a pod from the API server; defaults to the cluster cache's when a kubeconfig is given. */
  readonly readPod?: (namespace: string, name: string) => Promise<KubePod | null>;
  readonly auditIntervalMs?: number;
  readonly log: Logger;
}

export interface RunningWebhook {
  readonly url: string;
  readonly port: number;
  readonly metrics: WebhookMetrics;
  readonly policies: PolicyStore;
  /** Caches synced and a policy in force: what /readyz reports. */
  ready(): boolean;
  close(): Promise<void>;
}

export async function startWebhook(options: WebhookOptions): Promise<RunningWebhook> {
  const { log } = options;
  const metrics = new WebhookMetrics();
  const policies = loadPolicy(options.policyDir, metrics, log);
  const { view, synced, cache } = watchCluster(options);
  const readPod =
    options.readPod ?? (cache ? (namespace: string, name: string) => cache.readPod(namespace, name) : null);
  const app = createWebhookApp({
    policies,
    view,
    synced,
    config: { systemUsers: options.systemUsers },
    metrics,
    log,
    ...(readPod ? { readPod } : {}),
  });
  const serving = await serve(app, {
    host: options.host ?? '0.0.0.0',
    port: options.port ?? 8443,
    ...(options.tls ? { tls: options.tls } : {}),
    log,
    onCertificateExpiry: (s) => metrics.certificateExpiry.set(s),
  });
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
    ready: () => synced() && policies.current() !== null,
    async close() {
      stopAudit();
      policies.close();
      await serving.close();
      await cache?.stop();
    },
  };
}

/** The policy files, hot-reloaded, with their state mirrored in the metrics. */
function loadPolicy(dir: string, metrics: WebhookMetrics, log: Logger): PolicyStore {
  const policies = new PolicyStore(dir, log);
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
  readonly view: ClusterView;
  readonly synced: () => boolean;
  /** The informer caches, when the webhook watches a real cluster (the drift audit reads them). */
  readonly cache: ClusterCache | null;
}

/** Informer caches from the kubeconfig, or the view the caller gives (tests and benchmarks). */
function watchCluster(options: WebhookOptions): ClusterWatch {
  const { log } = options;
  if (options.kubeconfig) {
    const cache = new ClusterCache(options.kubeconfig, log);
    // Readiness waits for this; serving starts at once so that probes can answer.
    cache
      .start()
      .catch((e: unknown) =>
        log.error(
          { err: e instanceof Error ? e.message : String(e) },
          'initial cache sync failed; retrying via the watch',
        ),
      );
    return { view: cache, synced: () => cache.synced(), cache };
  }
  if (options.view) return { view: options.view, synced: () => true, cache: null };
  throw new Error('startWebhook needs a kubeconfig or a view');
}
