// Starts the admission webhook: policy store (hot reload), informer caches, HTTPS with certificate reload, metrics
// and the periodic drift audit. `tessera serve webhook` and the tests call startWebhook.

import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ClusterView } from '../core/admission/cluster-view.ts';
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
  const policies = new PolicyStore(options.policyDir, log);
  const track = () => metrics.setPolicy(policies.status().state, policies.status().revision);
  policies.on('change', track);
  policies.on('rejected', () => {
    metrics.policyRejections.inc();
    track();
  });
  policies.reload();
  track();
  policies.watch();

  let cache: ClusterCache | null = null;
  let view: ClusterView;
  let synced: () => boolean;
  if (options.kubeconfig) {
    const c = new ClusterCache(options.kubeconfig, log);
    cache = c;
    view = c;
    synced = () => c.synced();
    // Readiness waits for this; serving starts at once so that probes can answer.
    c.start().catch((e: unknown) => log.error({ err: e instanceof Error ? e.message : String(e) }, 'initial cache sync failed; retrying via the watch'));
  } else if (options.view) {
    view = options.view;
    synced = () => true;
  } else {
    throw new Error('startWebhook needs a kubeconfig or a view');
  }
  const app = createWebhookApp({ policies, view, synced, config: { systemUsers: options.systemUsers }, metrics, log });
  const serving = await serve(app, { host: options.host ?? '0.0.0.0', port: options.port ?? 8443, ...(options.tls ? { tls: options.tls } : {}), log, onCertificateExpiry: (s) => metrics.certificateExpiry.set(s) });
  const stopAudit = cache && options.kubeconfig ? scheduleDriftAudit(cache, policies, metrics, log, options.auditIntervalMs ?? 60_000, policyReportWriter(options.kubeconfig, log)) : () => {};
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
