// The server's periodic drift audit: the same auditPods as `tessera audit`, over the informer cache, exported as
// metrics, logged, and written as PolicyReports where that CRD exists. Runs after every policy change and on an interval.

import type { Logger } from 'pino';
import { auditPods, type DriftReport } from '../core/admission/audit.ts';
import type { PolicyStore } from '../server/policy-store.ts';
import type { ClusterCache } from './cluster-cache.ts';
import type { WebhookMetrics } from './metrics.ts';
import type { PolicyReportWriter } from './policy-reports.ts';

export function runDriftAudit(
  cache: ClusterCache,
  policies: PolicyStore,
  metrics: WebhookMetrics,
  log: Logger,
  reports: PolicyReportWriter | null = null,
): DriftReport | null {
  const policy = policies.current();
  if (policy === null || !cache.synced()) return null;
  const report = auditPods(cache.allPods(), policy, cache);
  metrics.driftPods.reset();
  for (const r of report.byRule) metrics.driftPods.set({ rule: r.rule, action: r.action, tenant: r.tenant }, r.pods);
  metrics.driftStaleRevision.set(report.staleRevision);
  log.info(
    {
      revision: report.revision,
      checked: report.checked,
      drifted: report.drifted.length,
      staleRevision: report.staleRevision,
    },
    'drift audit',
  );
  reports
    ?.write(report, policy.name)
    .catch((e: unknown) => log.warn({ err: e instanceof Error ? e.message : String(e) }, 'PolicyReports not written'));
  return report;
}

export function scheduleDriftAudit(
  cache: ClusterCache,
  policies: PolicyStore,
  metrics: WebhookMetrics,
  log: Logger,
  intervalMs: number,
  reports: PolicyReportWriter | null = null,
): () => void {
  const run = () => {
    try {
      runDriftAudit(cache, policies, metrics, log, reports);
    } catch (e) {
      log.error({ err: e }, 'drift audit failed');
    }
  };
  const timer = setInterval(run, intervalMs);
  timer.unref();
  const onChange = () => setTimeout(run, 1000).unref();
  policies.on('change', onChange);
  return () => {
    clearInterval(timer);
    policies.off('change', onChange);
  };
}
