// Starts the extender: informers on Nodes, Pods and Namespaces feed the SchedulingState (rebuilt from the API on every
// start), the policy store gives pools, tenants and quotas, a Lease picks the one replica that serves (and, in a pod,
// labels that pod for the Service: role-label.ts), the capacity controller advertises fraction capacity, and express
// answers kube-scheduler.

import { hostname } from 'node:os';
import { CoreV1Api, type KubeConfig, type V1Namespace, type V1Node, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeNamespace, KubeNode, KubePod } from '../core/kube-objects.ts';
import { SchedulingState } from '../core/scheduling/state.ts';
import { DEFAULT_STRATEGY, strategyNamed } from '../core/scoring/strategy-registry.ts';
import { gpuPodShapes, typicalShapes } from '../core/scoring/workload-profile.ts';
import { type ApiProbeOptions, ClusterConnection } from '../server/cluster-connection.ts';
import { PolicyStore } from '../server/policy-store.ts';
import { serve, type Serving } from '../server/serve.ts';
import { checkTls, type TlsFiles } from '../server/tls-files.ts';
import { listInPages } from '../server/paged-list.ts';
import { WatchedResource } from '../server/watched-resource.ts';
import { createExtenderApp } from './app.ts';
import { type DraWatches, watchDraInto } from './dra-watch.ts';
import { reconcileCapacity } from './capacity.ts';
import { kubernetesWriter, type ClusterWriter } from './cluster-writer.ts';
import { type CapacityPublisher, startCapacityPublisher } from './fleet-capacity.ts';
import { type GpuFitCheck, startGpuFitCheck } from './gpu-fit-check.ts';
import { LeaderElector } from './leader.ts';
import { ROLE_LABEL, RoleLabel } from './role-label.ts';
import { KubeJson } from '../server/kube-json.ts';
import { ExtenderMetrics } from './metrics.ts';
import { ExtenderScheduler } from './scheduler.ts';

export interface ExtenderOptions {
  readonly kubeconfig: KubeConfig;
  readonly policyDir?: string;
  /** Keeps the last good policy files across restarts (an emptyDir): see server/policy-store.ts. */
  readonly policyCacheDir?: string;
  readonly host?: string;
  readonly port?: number;
  readonly prefix?: string;
  readonly tls?: TlsFiles;
  readonly strategy?: string;
  /** What filter answers: the single best node where kube-scheduler's scores cannot tell nodes apart (default), or all. */
  readonly filterAnswers?: 'best' | 'all';
  /** Lease namespace for leader election; without it this replica always serves (single replica). */
  readonly leaseNamespace?: string;
  readonly leaseName?: string;
  /** How long the Lease lasts unrenewed: a crashed leader's successor waits this long (default 3 s). */
  readonly leaseSeconds?: number;
  /**
   * This replica's pod (the downward API's metadata.name) and its namespace (default: the lease namespace). With it,
   * every replica that can serve is Ready and the leader labels its pod for the Service; without it (a plain process),
   * only the leader is Ready, so that a readiness-based proxy sends calls to it alone.
   */
  readonly podName?: string;
  readonly podNamespace?: string;
  readonly identity?: string;
  readonly assumeTtlMs?: number;
  readonly writer?: ClusterWriter;
  /** How the API server is probed (see server/cluster-connection.ts); tests shorten it. */
  readonly apiProbe?: ApiProbeOptions;
  /** A worker of a fleet (docs/fleet.md): publish capacity for the manager and/or answer tessera.io/gpu-fit. */
  readonly fleet?: FleetOptions;
  readonly log: Logger;
}

export interface FleetOptions {
  /** This cluster's name in the fleet (its MultiKueueCluster on the manager). */
  readonly cluster: string;
  /** The cluster's region (topology.kubernetes.io/region of its nodes), or null. */
  readonly region: string | null;
  /** Where the capacity ConfigMap goes (default tessera-system). */
  readonly namespace?: string;
  readonly publishCapacity: boolean;
  readonly gpuFitCheck: boolean;
  /** Pass interval of both (default 2 s for capacity, 1 s for gpu-fit). */
  readonly intervalMs?: number;
}

export interface RunningFleet {
  readonly capacity: CapacityPublisher | null;
  readonly gpuFit: GpuFitCheck | null;
}

export interface RunningExtender {
  readonly url: string;
  readonly port: number;
  readonly state: SchedulingState;
  readonly scheduler: ExtenderScheduler;
  readonly metrics: ExtenderMetrics;
  readonly fleet: RunningFleet;
  /** Leader, the API server answers, caches synced from it, a policy in force (when a policy directory is given). */
  ready(): boolean;
  close(): Promise<void>;
}

export async function startExtender(options: ExtenderOptions): Promise<RunningExtender> {
  const { log, kubeconfig: kc } = options;
  // Checked before anything starts, so that a bad start leaves nothing running.
  if (options.tls) checkTls(options.tls);
  const metrics = new ExtenderMetrics();
  const state = new SchedulingState();
  const writer = options.writer ?? kubernetesWriter(kc);
  const dra = watchDraInto(kc, state, log);
  const cluster = watchCluster(kc, log, options.apiProbe, dra);
  const policies = options.policyDir ? loadPolicy(options.policyDir, options.policyCacheDir ?? null, state, log) : null;
  const scheduler = buildScheduler(options, { state, writer, metrics, pods: cluster.pods });
  // Until electLeader runs there is no elector and this replica counts as leading, so the initial sync reconciles.
  let leader: LeaderElector | null = null;
  let closed = false;
  const isLeader = () => leader === null || leader.isLeader;
  const reconcile = capacityReconciler(writer, isLeader, log);
  const role = roleLabel(options, writer, log);
  feedState(cluster, state, reconcile, log);
  const upkeep = startUpkeep(scheduler, cluster.pods);
  // The state is rebuilt from the API in the background (namespaces, then nodes, then pods); readiness waits for it,
  // and until then every verb answers why it cannot serve.
  cluster.connection.start();
  void cluster.pods.whenSynced().then(() => {
    if (closed) return;
    upkeep.refreshProfile();
    log.info({ nodes: state.nodes.size, allocations: state.ledger.size }, 'state rebuilt from the API');
  });
  leader = electLeader(
    options,
    () => {
      for (const n of cluster.nodes.list()) reconcile(n as KubeNode);
    },
    // What would keep a leader from serving keeps this replica from leading.
    () => cluster.connection.problem() ?? policyProblem(policies),
    role,
    () => ownPodNotReady(options, cluster.pods),
  );
  const notServing = servingProblem(cluster.connection, policies, () => closed);
  // kube-scheduler's calls need the leader; readiness needs only a replica that could serve when it leads.
  const notReady = () => notServing() ?? (isLeader() ? null : 'not the leader (another replica holds the lease)');
  const notReadyForProbe = role === null ? notReady : notServing;
  const labelTimer = role === null ? null : setInterval(() => void role.want(isLeader() && !closed), 1_000);
  labelTimer?.unref();
  // Fleet duties wait for the state to be rebuilt: an empty state would publish no capacity and place anything.
  const fleet = startFleet(options, state, cluster.pods, () => isLeader() && notReady() === null, metrics);
  let serving: Serving;
  try {
    serving = await serveScheduler(options, scheduler, metrics, notReady, notReadyForProbe);
  } catch (e) {
    closed = true;
    if (labelTimer) clearInterval(labelTimer);
    fleet.capacity?.stop();
    fleet.gpuFit?.stop();
    upkeep.stop();
    policies?.close();
    await leader?.stop();
    await cluster.connection.stop();
    throw e;
  }
  const url = `${serving.url}${options.prefix ?? ''}`;
  log.info({ url }, 'extender serving');
  return {
    url,
    port: serving.port,
    state,
    scheduler,
    metrics,
    fleet,
    ready: () => notReady() === null,
    async close() {
      closed = true;
      if (labelTimer) clearInterval(labelTimer);
      fleet.capacity?.stop();
      fleet.gpuFit?.stop();
      upkeep.stop();
      policies?.close();
      // The label first, then the Lease: the Service stops sending calls here before the successor can take over, and
      // the successor labels its own pod as soon as it holds the Lease.
      // Bounded: with the API server away the label cannot go, and the pod's deletion takes it anyway.
      if (role) await Promise.race([role.want(false), new Promise((r) => setTimeout(r, 2_000).unref())]);
      await leader?.stop();
      await serving.close();
      await cluster.connection.stop();
    },
  };
}

function startFleet(
  options: ExtenderOptions,
  state: SchedulingState,
  pods: WatchedResource<V1Pod>,
  serving: () => boolean,
  metrics: ExtenderMetrics,
): RunningFleet {
  const f = options.fleet;
  if (!f || (!f.publishCapacity && !f.gpuFitCheck)) return { capacity: null, gpuFit: null };
  const api = new KubeJson(options.kubeconfig);
  const log = options.log.child({ fleet: f.cluster });
  const interval = f.intervalMs !== undefined ? { intervalMs: f.intervalMs } : {};
  return {
    capacity: f.publishCapacity
      ? startCapacityPublisher({
          api,
          state,
          cluster: f.cluster,
          region: f.region,
          namespace: f.namespace ?? 'tessera-system',
          isLeader: serving,
          registry: metrics.registry,
          log,
          ...interval,
        })
      : null,
    gpuFit: f.gpuFitCheck
      ? startGpuFitCheck({
          api,
          state,
          pods: () => pods.list() as KubePod[],
          isLeader: serving,
          registry: metrics.registry,
          log,
          ...interval,
        })
      : null,
  };
}

/** The informers the scheduling state is rebuilt from on every start, and whether they can be trusted. */
interface ClusterWatch {
  readonly nodes: WatchedResource<V1Node>;
  readonly pods: WatchedResource<V1Pod>;
  readonly namespaces: WatchedResource<V1Namespace>;
  readonly connection: ClusterConnection;
}

function watchCluster(kc: KubeConfig, log: Logger, probe: ApiProbeOptions | undefined, dra: DraWatches): ClusterWatch {
  const core = kc.makeApiClient(CoreV1Api);
  const nodes = new WatchedResource<V1Node>(
    kc,
    '/api/v1/nodes',
    () => listInPages((p) => core.listNode(p)),
    log,
    'nodes',
  );
  const pods = new WatchedResource<V1Pod>(
    kc,
    '/api/v1/pods',
    () => listInPages((p) => core.listPodForAllNamespaces(p)),
    log,
    'pods',
  );
  const namespaces = new WatchedResource<V1Namespace>(
    kc,
    '/api/v1/namespaces',
    () => core.listNamespace(),
    log,
    'namespaces',
  );
  // DRA objects and namespaces first so that pods land with their claims and tenants; nodes before pods so that pods
  // find their nodes.
  const connection = new ClusterConnection(kc, [...dra, namespaces, nodes, pods], log, probe);
  return { nodes, pods, namespaces, connection };
}

/** Pools, tenants and quotas from the policy files, hot-reloaded into the state. */
function loadPolicy(dir: string, cacheDir: string | null, state: SchedulingState, log: Logger): PolicyStore {
  const store = new PolicyStore(dir, log, cacheDir);
  store.on('change', (p) => state.setPolicy(p));
  store.reload();
  state.setPolicy(store.current());
  store.watch();
  return store;
}

interface SchedulerParts {
  readonly state: SchedulingState;
  readonly writer: ClusterWriter;
  readonly metrics: ExtenderMetrics;
  readonly pods: WatchedResource<V1Pod>;
}

function buildScheduler(options: ExtenderOptions, { state, writer, metrics, pods }: SchedulerParts): ExtenderScheduler {
  return new ExtenderScheduler({
    state,
    strategy: strategyNamed(options.strategy ?? DEFAULT_STRATEGY),
    writer,
    metrics,
    log: options.log,
    podLookup: (namespace, name) => pods.get(name, namespace) as KubePod | undefined,
    ...(options.assumeTtlMs !== undefined ? { assumeTtlMs: options.assumeTtlMs } : {}),
    ...(options.filterAnswers ? { filterAnswers: options.filterAnswers } : {}),
  });
}

/** Advertises a fraction node's capacity; only the leader writes, so replicas do not race on node status. */
function capacityReconciler(writer: ClusterWriter, isLeader: () => boolean, log: Logger): (n: KubeNode) => void {
  return (n) => {
    if (!isLeader()) return;
    reconcileCapacity(n, writer, log).catch((e: unknown) =>
      log.warn(
        { node: n.metadata?.name, err: e instanceof Error ? e.message : String(e) },
        'could not advertise fraction capacity',
      ),
    );
  };
}

/** Keeps the state in step with the informers; node events also reconcile fraction capacity. */
function feedState(cluster: ClusterWatch, state: SchedulingState, reconcile: (n: KubeNode) => void, log: Logger): void {
  const onNode = (n: V1Node) => {
    const inventory = state.upsertNode(n as KubeNode);
    if (!inventory.usable && inventory.mode !== 'none')
      log.warn({ node: inventory.name, problems: inventory.problems }, 'GPU node unusable');
    reconcile(n as KubeNode);
  };
  cluster.nodes.on('add', onNode);
  cluster.nodes.on('update', onNode);
  cluster.nodes.on('delete', (n) => state.removeNode(n.metadata?.name ?? ''));
  const onNamespace = (ns: V1Namespace) => state.upsertNamespace(ns as KubeNamespace);
  cluster.namespaces.on('add', onNamespace);
  cluster.namespaces.on('update', onNamespace);
  cluster.namespaces.on('delete', (ns) => state.removeNamespace(ns.metadata?.name ?? ''));
  const onPod = (p: V1Pod) => {
    state.upsertPod(p as KubePod);
    const problem = state.problems.get(p.metadata?.uid ?? '');
    if (problem)
      log.warn({ pod: `${p.metadata?.namespace}/${p.metadata?.name}`, problem }, 'pod GPU record unreadable');
  };
  cluster.pods.on('add', onPod);
  cluster.pods.on('update', onPod);
  cluster.pods.on('delete', (p) => state.removePod(p.metadata?.uid ?? ''));
}

/** Refreshes the workload profile scoring uses and expires stale assumed placements. */
function startUpkeep(
  scheduler: ExtenderScheduler,
  pods: WatchedResource<V1Pod>,
): { refreshProfile: () => void; stop: () => void } {
  const refreshProfile = () => {
    scheduler.setProfile(typicalShapes(gpuPodShapes(pods.list() as KubePod[])));
  };
  refreshProfile();
  const profileTimer = setInterval(refreshProfile, 60_000);
  profileTimer.unref();
  const expireTimer = setInterval(() => scheduler.expire(), 5_000);
  expireTimer.unref();
  return {
    refreshProfile,
    stop() {
      clearInterval(profileTimer);
      clearInterval(expireTimer);
    },
  };
}

/**
 * With a lease namespace a Lease picks the one replica that serves; without, this replica leads. A new leader
 * reconciles every node's capacity.
 */
function electLeader(
  options: ExtenderOptions,
  reconcileAll: () => void,
  unfit: () => string | null,
  role: RoleLabel | null,
  mayNotTake: () => string | null,
): LeaderElector | null {
  if (!options.leaseNamespace) {
    reconcileAll();
    return null;
  }
  const leader = new LeaderElector(options.kubeconfig, {
    namespace: options.leaseNamespace,
    name: options.leaseName ?? 'tessera-extender',
    identity: options.identity ?? `${hostname()}-${process.pid}`,
    // A short lease, renewed every second: a crashed leader's successor serves within about leaseSeconds (the handoff
    // gap, docs/operations.md). A standby looks every 500 ms, so a released lease (SIGTERM) is taken at once.
    leaseSeconds: options.leaseSeconds ?? 3,
    retryMs: 1_000,
    standbyRetryMs: 500,
    log: options.log,
    unfit,
    mayNotTake,
    onChange: (lead) => {
      if (lead) reconcileAll();
      void role?.want(lead);
    },
  });
  leader.start();
  return leader;
}

/**
 * Why this replica should wait before taking the lease: its pod (the downward API's name) is known and the kubelet
 * reports it not Ready, so the Service would not send it kube-scheduler's calls. Unknown pods (no --pod-name, not in
 * the cache) do not wait.
 */
function ownPodNotReady(options: ExtenderOptions, pods: WatchedResource<V1Pod>): string | null {
  if (!options.podName) return null;
  const namespace = options.podNamespace ?? options.leaseNamespace ?? '';
  const pod = pods.get(options.podName, namespace);
  const ready = pod?.status?.conditions?.find((c) => c.type === 'Ready');
  return ready?.status === 'False'
    ? `its pod ${namespace}/${options.podName} is not Ready yet, so the Service would not send it kube-scheduler's calls`
    : null;
}

const policyProblem = (policies: PolicyStore | null): string | null =>
  policies !== null && policies.current() === null ? `no valid policy: ${policies.status().problems.join('; ')}` : null;

/** Why this replica could not serve even as the leader (shut down, API unreachable or caches unsynced, no policy). */
function servingProblem(
  connection: ClusterConnection,
  policies: PolicyStore | null,
  closed: () => boolean,
): () => string | null {
  return () => {
    if (closed()) return 'shut down';
    return connection.problem() ?? policyProblem(policies);
  };
}

/** The leader label on this replica's pod, when it runs in one and elects a leader. */
function roleLabel(options: ExtenderOptions, writer: ClusterWriter, log: Logger): RoleLabel | null {
  if (!options.leaseNamespace || !options.podName) return null;
  const namespace = options.podNamespace ?? options.leaseNamespace;
  const name = options.podName;
  const role = new RoleLabel((value) => writer.labelPod(namespace, name, ROLE_LABEL, value), log);
  // A pod whose previous container led may still carry the label: remove it before anything else.
  void role.want(false);
  return role;
}

function serveScheduler(
  options: ExtenderOptions,
  scheduler: ExtenderScheduler,
  metrics: ExtenderMetrics,
  notReady: () => string | null,
  notReadyForProbe: () => string | null,
): Promise<Serving> {
  const { log } = options;
  const app = createExtenderApp({
    scheduler,
    metrics,
    log,
    notReady,
    probeNotReady: notReadyForProbe,
    prefix: options.prefix ?? '',
  });
  return serve(app, {
    host: options.host ?? '0.0.0.0',
    port: options.port ?? 8888,
    ...(options.tls ? { tls: options.tls } : {}),
    log,
  });
}
