// The node agent's Prometheus metrics: Allocate latency and outcomes, registration, GPU health.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly allocateSeconds = new Histogram({
    name: 'tessera_agent_allocate_duration_seconds',
    help: 'Time to answer one kubelet Allocate call (PodResources List, pod lookup, answer)',
    labelNames: ['outcome'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [this.registry],
  });
  readonly refusals = new Counter({
    name: 'tessera_agent_allocate_refusals_total',
    help: 'Allocate calls refused, by why: unidentified (no single waiting pod), assignment (invalid or not Tessera’s), error',
    labelNames: ['why'] as const,
    registers: [this.registry],
  });
  readonly registered = new Gauge({
    name: 'tessera_agent_registered',
    help: '1 while the agent is registered with the kubelet now running',
    registers: [this.registry],
  });
  readonly registrations = new Counter({
    name: 'tessera_agent_registrations_total',
    help: 'Registrations with the kubelet (one at start, one per kubelet restart)',
    registers: [this.registry],
  });
  readonly gpus = new Gauge({
    name: 'tessera_agent_gpus',
    help: 'GPUs the agent advertises, by health',
    labelNames: ['health'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tessera_agent_' });
  }
}
