// The extender's Prometheus metrics: latency per verb, bind outcomes, allocation per GPU and tenant, fragmentation.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class ExtenderMetrics {
  readonly registry = new Registry();
  readonly verbSeconds = new Histogram({
    name: 'tessera_extender_request_duration_seconds',
    help: 'Time to answer one extender call, in process',
    labelNames: ['verb', 'outcome'] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
    registers: [this.registry],
  });
  readonly connections = new Counter({
    name: 'tessera_extender_connections_total',
    help: 'Connections the verbs were called on (kube-scheduler keeps 2 idle per extender: calls beyond open new ones)',
    registers: [this.registry],
  });
  readonly binds = new Counter({
    name: 'tessera_extender_binds_total',
    help: 'Bind outcomes: bound, unfit, quota, conflict, error',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly rollbacks = new Counter({
    name: 'tessera_extender_bind_rollbacks_total',
    help: 'Binds whose reservation was dropped because the Binding failed (nothing was written)',
    registers: [this.registry],
  });
  readonly filterReasons = new Counter({
    name: 'tessera_extender_filter_failures_total',
    help: 'Nodes filtered out, by reason code',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly expired = new Counter({
    name: 'tessera_extender_assumptions_expired_total',
    help: 'Assumed placements that expired before the informer saw them bound',
    registers: [this.registry],
  });
  readonly podProblems = new Gauge({
    name: 'tessera_extender_pod_record_problems',
    help: 'Pods whose GPU record could not be read',
    registers: [this.registry],
  });
  readonly nodeProblems = new Gauge({
    name: 'tessera_extender_unusable_nodes',
    help: 'GPU nodes refused because their labels are missing or contradictory',
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'tessera_extender_leader',
    help: '1 while this replica holds the lease and serves (ready: caches synced from a reachable API server), at scrape time',
    registers: [this.registry],
  });
  readonly gpuAllocated = new Gauge({
    name: 'tessera_gpu_allocated_milli',
    help: 'Compute reserved per GPU of fraction nodes (milli)',
    labelNames: ['node', 'gpu'] as const,
    registers: [this.registry],
  });
  readonly tenantAllocated = new Gauge({
    name: 'tessera_tenant_gpu_equivalents',
    help: 'GPU-equivalents held per tenant',
    labelNames: ['tenant'] as const,
    registers: [this.registry],
  });
  readonly fragmentation = new Gauge({
    name: 'tessera_fragmentation_ratio',
    help: 'Free GPU capacity of fraction nodes that the typical pods cannot use, as a share of all free capacity',
    registers: [this.registry],
  });

  readonly podAllocated = new Gauge({
    name: 'tessera_pod_gpu_equivalents',
    help: 'GPU-equivalents each running pod holds, as quota counts them; one series per GPU on fraction nodes (gpu="" elsewhere)',
    labelNames: ['namespace', 'pod', 'tenant', 'pool', 'node', 'gpu'] as const,
    registers: [this.registry],
  });
  readonly tenantQuota = new Gauge({
    name: 'tessera_tenant_quota_gpu_equivalents',
    help: "Each tenant's GPU quota in GPU-equivalents, from the policy in force (tenants without a quota are absent)",
    labelNames: ['tenant'] as const,
    registers: [this.registry],
  });
  readonly pending = new Gauge({
    name: 'tessera_pending_gpu_pods',
    help: 'GPU pods waiting to be scheduled, by the reason code kube-scheduler last reported (waiting: not tried yet)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tessera_extender_' });
  }
}
