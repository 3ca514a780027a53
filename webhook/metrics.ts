// The webhook's Prometheus metrics. Labels stay low-cardinality: no pod or namespace names.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class WebhookMetrics {
  readonly registry = new Registry();
  readonly reviewSeconds = new Histogram({
    name: 'tessera_webhook_review_duration_seconds',
    help: 'Time to answer one AdmissionReview, in process',
    labelNames: ['webhook', 'kind', 'operation', 'allowed'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25],
    registers: [this.registry],
  });
  readonly decisions = new Counter({
    name: 'tessera_webhook_decisions_total',
    help: 'Rule outcomes by rule and action (enforce denies, warn warns, audit records)',
    labelNames: ['webhook', 'rule', 'action'] as const,
    registers: [this.registry],
  });
  readonly malformed = new Counter({
    name: 'tessera_webhook_malformed_requests_total',
    help: 'Requests that were not a valid AdmissionReview',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: 'tessera_webhook_internal_errors_total',
    help: 'Reviews that failed inside Tessera (answered with a denial)',
    labelNames: ['webhook'] as const,
    registers: [this.registry],
  });
  readonly policyState = new Gauge({
    name: 'tessera_policy_load_state',
    help: '1 for the current policy state: valid, stale (invalid files, last good served) or missing',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  readonly policyInfo = new Gauge({
    name: 'tessera_policy_info',
    help: 'The policy revision in force',
    labelNames: ['revision'] as const,
    registers: [this.registry],
  });
  readonly policyRejections = new Counter({
    name: 'tessera_policy_rejections_total',
    help: 'Policy file sets that failed to compile',
    registers: [this.registry],
  });
  readonly driftPods = new Gauge({
    name: 'tessera_drift_pods',
    help: 'Running pods that violate the current policy, by rule, action and tenant',
    labelNames: ['rule', 'action', 'tenant'] as const,
    registers: [this.registry],
  });
  readonly driftStaleRevision = new Gauge({
    name: 'tessera_drift_stale_revision_pods',
    help: 'Running pods admitted under an older policy revision',
    registers: [this.registry],
  });
  readonly quotaReservations = new Counter({
    name: 'tessera_webhook_quota_reservations_total',
    help: 'Quota reservations of GPU pods: reserved, dry-run (checked only), denied (over quota), unavailable (fail closed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly quotaReservationConflicts = new Counter({
    name: 'tessera_webhook_quota_reservation_conflicts_total',
    help: 'Conditional writes of the quota reservations that another writer beat (retried)',
    registers: [this.registry],
  });
  readonly quotaReservationSeconds = new Histogram({
    name: 'tessera_webhook_quota_reservation_duration_seconds',
    help: 'Time from a review asking for its reservation to the write being confirmed or refused',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [this.registry],
  });
  readonly certificateExpiry = new Gauge({
    name: 'tessera_tls_certificate_expiry_seconds',
    help: 'Seconds until the serving certificate expires',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tessera_webhook_' });
  }

  setPolicy(state: string, revision: string | null): void {
    for (const s of ['valid', 'stale', 'missing']) this.policyState.set({ state: s }, s === state ? 1 : 0);
    this.policyInfo.reset();
    if (revision !== null) this.policyInfo.set({ revision }, 1);
  }
}
