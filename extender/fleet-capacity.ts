// Capacity publishing for a fleet of clusters: the leading extender replica writes what this cluster can still give,
// per Tessera pool and GPU model in GPU-equivalents (core/fleet/capacity.ts), into the ConfigMap
// tessera-fleet-capacity (key capacity.json) that the manager's dispatcher reads through its MultiKueue kubeconfig,
// and exports the same figures as the gauge tessera_fleet_pool_gpu_equivalents{pool,model,kind="free"|"total"}.
// The ConfigMap is written only when the figures change.

import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import { type ClusterCapacity, poolCapacity } from '../core/fleet/capacity.ts';
import type { SchedulingState } from '../core/scheduling/state.ts';
import type { KubeJson } from '../server/kube-json.ts';

export const CAPACITY_CONFIGMAP = 'tessera-fleet-capacity';
export const CAPACITY_KEY = 'capacity.json';

export interface CapacityPublisherOptions {
  readonly api: KubeJson;
  readonly state: SchedulingState;
  /** This cluster's name in the fleet (its MultiKueueCluster's name on the manager). */
  readonly cluster: string;
  readonly region: string | null;
  readonly namespace: string;
  readonly intervalMs?: number;
  readonly isLeader: () => boolean;
  readonly registry: Registry;
  readonly log: Logger;
}

export interface CapacityPublisher {
  /** Computes and, if it changed, writes the capacity now. */
  publish(): Promise<ClusterCapacity | null>;
  stop(): void;
}

export function currentCapacity(state: SchedulingState, cluster: string, region: string | null): ClusterCapacity {
  const policy = state.policy;
  const pools = policy ? poolCapacity(policy, state.nodes.values(), (n) => state.ledger.usage(n)) : [];
  return { cluster, region, pools };
}

export function startCapacityPublisher(o: CapacityPublisherOptions): CapacityPublisher {
  const gauge = new Gauge({
    name: 'tessera_fleet_pool_gpu_equivalents',
    help: 'GPU-equivalents per Tessera pool and GPU model in this cluster: total on usable nodes, and free (held by no pod)',
    labelNames: ['pool', 'model', 'kind'] as const,
    registers: [o.registry],
  });
  let last = '';
  let running: Promise<ClusterCapacity | null> | null = null;
  const publish = async (): Promise<ClusterCapacity | null> => {
    const capacity = currentCapacity(o.state, o.cluster, o.region);
    gauge.reset();
    for (const p of capacity.pools) {
      gauge.set({ pool: p.pool, model: p.model ?? '', kind: 'total' }, p.total);
      gauge.set({ pool: p.pool, model: p.model ?? '', kind: 'free' }, p.free);
    }
    if (!o.isLeader() || o.state.policy === null) return null;
    const text = JSON.stringify(capacity);
    if (text === last) return capacity;
    await o.api.apply(
      `/api/v1/namespaces/${o.namespace}/configmaps/${CAPACITY_CONFIGMAP}`,
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: CAPACITY_CONFIGMAP,
          namespace: o.namespace,
          labels: { 'app.kubernetes.io/part-of': 'tessera', 'app.kubernetes.io/component': 'fleet-capacity' },
        },
        data: { [CAPACITY_KEY]: text },
      },
      'tessera-extender',
    );
    last = text;
    o.log.debug({ capacity }, 'published fleet capacity');
    return capacity;
  };
  const tick = () => {
    running ??= publish()
      .catch((e: unknown) => {
        o.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not publish fleet capacity');
        return null;
      })
      .finally(() => {
        running = null;
      });
  };
  const timer = setInterval(tick, o.intervalMs ?? 2_000);
  timer.unref();
  tick();
  return {
    publish: () => running ?? publish(),
    stop: () => clearInterval(timer),
  };
}
