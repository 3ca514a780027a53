// Starts the extender: informers on Nodes, Pods and Namespaces feed the SchedulingState (rebuilt from the API on every
// start), the policy store gives pools, tenants and quotas, a Lease picks the one replica that serves, the capacity
// controller advertises fraction capacity, and express answers kube-scheduler.

import { hostname } from 'node:os';
import { CoreV1Api, type KubeConfig, type V1Namespace, type V1Node, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { readDemand } from '../core/demand.ts';
import type { KubeNamespace, KubeNode, KubePod } from '../core/kube-objects.ts';
import { SchedulingState } from '../core/scheduling/state.ts';
import { DEFAULT_STRATEGY, strategyNamed } from '../core/scoring/strategies.ts';
import { typicalShapes, type PodShape } from '../core/scoring/workload-profile.ts';
import { PolicyStore } from '../server/policy-store.ts';
import { serve } from '../server/serve.ts';
import type { TlsFiles } from '../server/tls-files.ts';
import { WatchedResource } from '../server/watched-resource.ts';
import { createExtenderApp } from './app.ts';
import { reconcileCapacity } from './capacity.ts';
import { kubernetesWriter, type ClusterWriter } from './cluster-writer.ts';
import { LeaderElector } from './leader.ts';
import { ExtenderMetrics } from './metrics.ts';
import { ExtenderScheduler } from './scheduler.ts';

export interface ExtenderOptions {
  readonly kubeconfig: KubeConfig;
  readonly policyDir?: string;
  readonly host?: string;
  readonly port?: number;
  readonly prefix?: string;
  readonly tls?: TlsFiles;
  readonly strategy?: string;
  /** Lease namespace for leader election; without it this replica always serves (single replica). */
  readonly leaseNamespace?: string;
  readonly leaseName?: string;
  readonly identity?: string;
  readonly assumeTtlMs?: number;
  readonly writer?: ClusterWriter;
  readonly log: Logger;
}

export interface RunningExtender {
  readonly url: string;
  readonly port: number;
  readonly state: SchedulingState;
  readonly scheduler: ExtenderScheduler;
  readonly metrics: ExtenderMetrics;
  ready(): boolean;
  close(): Promise<void>;
}

function shapeOf(pod: KubePod): PodShape | null {
  try {
    const d = readDemand(pod);
    const f = d.fraction;
    return { cpuMilli: d.cpuMilli, memoryMiB: d.memoryMiB, gpus: f?.gpus ?? 0, milliPerGpu: f?.milliPerGpu ?? 0, models: d.models };
  } catch {
    return null;
  }
}

export async function startExtender(options: ExtenderOptions): Promise<RunningExtender> {
  const { log, kubeconfig: kc } = options;
  const core = kc.makeApiClient(CoreV1Api);
  const metrics = new ExtenderMetrics();
  const state = new SchedulingState();
  const writer = options.writer ?? kubernetesWriter(kc);
  const nodes = new WatchedResource<V1Node>(kc, '/api/v1/nodes', () => core.listNode(), log, 'nodes');
  const pods = new WatchedResource<V1Pod>(kc, '/api/v1/pods', () => core.listPodForAllNamespaces(), log, 'pods');
  const namespaces = new WatchedResource<V1Namespace>(kc, '/api/v1/namespaces', () => core.listNamespace(), log, 'namespaces');

  let policies: PolicyStore | null = null;
  if (options.policyDir) {
    const store = new PolicyStore(options.policyDir, log);
    policies = store;
    store.on('change', (p) => state.setPolicy(p));
    store.reload();
    state.setPolicy(store.current());
    store.watch();
  }
  const scheduler = new ExtenderScheduler({
    state,
    strategy: strategyNamed(options.strategy ?? DEFAULT_STRATEGY),
    writer,
    metrics,
    log,
    podLookup: (namespace, name) => pods.get(name, namespace) as KubePod | undefined,
    ...(options.assumeTtlMs !== undefined ? { assumeTtlMs: options.assumeTtlMs } : {}),
  });

  let leader: LeaderElector | null = null;
  const isLeader = () => leader === null || leader.isLeader;
  const reconcile = (n: KubeNode) => {
    if (!isLeader()) return;
    reconcileCapacity(n, writer, log).catch((e: unknown) => log.warn({ node: n.metadata?.name, err: e instanceof Error ? e.message : String(e) }, 'could not advertise fraction capacity'));
  };
  const onNode = (n: V1Node) => {
    const inventory = state.upsertNode(n as KubeNode);
    if (!inventory.usable && inventory.mode !== 'none') log.warn({ node: inventory.name, problems: inventory.problems }, 'GPU node unusable');
    reconcile(n as KubeNode);
  };
  nodes.on('add', onNode);
  nodes.on('update', onNode);
  nodes.on('delete', (n) => state.removeNode(n.metadata?.name ?? ''));
  const onNamespace = (ns: V1Namespace) => state.upsertNamespace(ns as KubeNamespace);
  namespaces.on('add', onNamespace);
  namespaces.on('update', onNamespace);
  namespaces.on('delete', (ns) => state.removeNamespace(ns.metadata?.name ?? ''));
  const onPod = (p: V1Pod) => {
    state.upsertPod(p as KubePod);
    const problem = state.problems.get(p.metadata?.uid ?? '');
    if (problem) log.warn({ pod: `${p.metadata?.namespace}/${p.metadata?.name}`, problem }, 'pod GPU record unreadable');
  };
  pods.on('add', onPod);
  pods.on('update', onPod);
  pods.on('delete', (p) => state.removePod(p.metadata?.uid ?? ''));

  // The initial list of each informer fires the add handlers above. Namespaces first so that pods land with their
  // tenants; nodes before pods so that pods find their nodes.
  await namespaces.start();
  await nodes.start();
  await pods.start();
  const refreshProfile = () => {
    const shapes = (pods.list() as KubePod[]).map(shapeOf).filter((s): s is PodShape => s !== null && s.gpus > 0);
    scheduler.setProfile(typicalShapes(shapes));
  };
  refreshProfile();
  const profileTimer = setInterval(refreshProfile, 60_000);
  profileTimer.unref();
  const expireTimer = setInterval(() => scheduler.expire(), 5_000);
  expireTimer.unref();

  if (options.leaseNamespace) {
    leader = new LeaderElector(kc, {
      namespace: options.leaseNamespace,
      name: options.leaseName ?? 'tessera-extender',
      identity: options.identity ?? `${hostname()}-${process.pid}`,
      log,
      onChange: (lead) => {
        metrics.leader.set(lead ? 1 : 0);
        if (lead) for (const n of nodes.list()) reconcile(n as KubeNode);
      },
    });
    leader.start();
  } else {
    metrics.leader.set(1);
    for (const n of nodes.list()) reconcile(n as KubeNode);
  }

  const notReady = (): string | null => {
    if (!(nodes.synced && pods.synced && namespaces.synced)) return 'caches not synced';
    if (policies !== null && policies.current() === null) return `no valid policy: ${policies.status().problems.join('; ')}`;
    if (!isLeader()) return 'not the leader (another replica holds the lease)';
    return null;
  };
  const app = createExtenderApp({ scheduler, metrics, log, notReady, prefix: options.prefix ?? '' });
  const serving = await serve(app, { host: options.host ?? '0.0.0.0', port: options.port ?? 8888, ...(options.tls ? { tls: options.tls } : {}), log });
  const port = serving.port;
  const url = `${serving.url}${options.prefix ?? ''}`;
  log.info({ url, nodes: state.nodes.size, allocations: state.ledger.size }, 'extender serving; state rebuilt from the API');
  return {
    url,
    port,
    state,
    scheduler,
    metrics,
    ready: () => notReady() === null,
    async close() {
      clearInterval(profileTimer);
      clearInterval(expireTimer);
      policies?.close();
      await leader?.stop();
      await serving.close();
      await Promise.all([nodes.stop(), pods.stop(), namespaces.stop()]);
    },
  };
}
