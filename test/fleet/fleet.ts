// A fleet of three control planes on one machine, for `npm run test:fleet` and `npm run demo:fleet`:
//   manager    etcd, kube-apiserver, kube-controller-manager (garbage collector), Kueue (MultiKueue, dispatcherName
//              tessera.io/fleet-dispatcher), Tessera's dispatcher (dispatcher/dispatcher.ts) and Tessera's webhook
//              serving only /mutate-job for Jobs, as the chart's fleet.manager runs them (in process);
//   eu-central, us-east  workers: test/e2e/stack.ts (etcd, kube-apiserver, kube-controller-manager, kube-scheduler with
//              Tessera's extender, Tessera's webhook, KWOK GPU nodes), the extender publishing capacity and answering
//              tessera.io/gpu-fit, and Kueue.
// The same policy (fleet-policy.yaml) everywhere; tenant namespaces with the same tessera.io/tenant labels on every
// cluster; a ResourceFlavor per Tessera pool on each worker; quota in tessera.io/gpu-milli, with Kueue resource
// transformations for nvidia.com/gpu, the MIG names and VM device names. Everything is small: 2 cores.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdmissionregistrationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { createCa, issueLeaf, type KeyPair } from '../../certs/authority.ts';
import { type RunningWebhook, startWebhook } from '../../webhook/server.ts';
import { TENANT_LABEL } from '../../core/well-known-names.ts';
import { startDispatcher, type Dispatcher, DISPATCHER_NAME } from '../../dispatcher/dispatcher.ts';
import { GPU_FIT_CONTROLLER } from '../../extender/gpu-fit-check.ts';
import { compilePolicy } from '../../core/policy/compile.ts';
import type { Policy } from '../../core/policy/model.ts';
import { poolRegion } from '../../core/fleet/region.ts';
import { DEFAULT_CONTROLLERS, startCluster, type LocalCluster } from '../controlplane/cluster.ts';
import { createFakeNode, startStack, type Stack } from '../e2e/stack.ts';
import { ensureKueue, type KueueBuild } from './kueue-build.ts';
import { KUEUE_NAMESPACE, type RunningKueue, startKueue } from './kueue.ts';
import { KubeJson } from '../../server/kube-json.ts';
import { until } from '../fixtures/waiting.ts';

export const FLEET_POLICY = readFileSync(new URL('./fleet-policy.yaml', import.meta.url), 'utf8');
export const TENANTS = ['bank', 'research'] as const;
/** Fleet-wide GPU budget per tenant on the manager, in GPU-equivalents (the workers' Tessera quotas are per cluster). */
export const FLEET_BUDGET: Record<string, number> = { bank: 3, research: 6 };
export const QUEUE = 'gpu';
/** A worker's kube-controller-manager: Jobs and nodes as in every e2e stack, and the garbage collector, which deletes
 * the pods of a Job that MultiKueue deleted on the worker (a copy that lost the race, a job deleted on the manager). */
export const WORKER_CONTROLLERS = [...DEFAULT_CONTROLLERS, 'garbage-collector-controller'];
/** The manager's: only the garbage collector, which deletes the Workload of a deleted Job (Kueue's ownerReference);
 * MultiKueue then deletes the worker's copies. Jobs there are managedBy MultiKueue, so no Job controller. */
export const MANAGER_CONTROLLERS = ['garbage-collector-controller'];
const MULTIKUEUE_USER = 'system:serviceaccount:kueue-system:multikueue-sa';
const KUEUE_API = '/apis/kueue.x-k8s.io/v1beta2';

/** GPU-equivalents of the resources Kueue counts, onto tessera.io/gpu-milli (Configuration.resources.transformations,
 * v0.17.0 apis/config/v1beta2/configuration_types.go ResourceTransformation: input, strategy Replace, outputs per unit). */
export const TRANSFORMATIONS = [
  { input: 'nvidia.com/gpu', strategy: 'Replace', outputs: { 'tessera.io/gpu-milli': '1000' } },
  // A100/H100 MIG instances: compute slices / 7 of a GPU (Tessera's equivalents for MIG).
  { input: 'nvidia.com/mig-1g.10gb', strategy: 'Replace', outputs: { 'tessera.io/gpu-milli': '143' } },
  { input: 'nvidia.com/mig-2g.20gb', strategy: 'Replace', outputs: { 'tessera.io/gpu-milli': '286' } },
  { input: 'nvidia.com/mig-3g.40gb', strategy: 'Replace', outputs: { 'tessera.io/gpu-milli': '429' } },
  { input: 'nvidia.com/mig-7g.80gb', strategy: 'Replace', outputs: { 'tessera.io/gpu-milli': '1000' } },
  // KubeVirt VMs ask for a passthrough GPU by its device name (permittedHostDevices resourceName).
  { input: 'nvidia.com/GH100_H100_SXM5_80GB', strategy: 'Replace', outputs: { 'tessera.io/gpu-milli': '1000' } },
  { input: 'nvidia.com/GA100_A100_SXM4_80GB', strategy: 'Replace', outputs: { 'tessera.io/gpu-milli': '1000' } },
];

export interface WorkerSpec {
  readonly name: string;
  readonly region: string;
  /** Pools with nodes in this worker: the fraction pool and the whole-GPU pool of the region. */
  readonly pools: readonly string[];
}

export const WORKERS: readonly WorkerSpec[] = [
  { name: 'eu-central', region: 'eu-central', pools: ['eu-shared', 'eu-whole'] },
  { name: 'us-east', region: 'us-east', pools: ['us-shared', 'us-whole'] },
];

export interface Worker {
  readonly spec: WorkerSpec;
  readonly stack: Stack;
  readonly kueue: RunningKueue;
  readonly admin: KubeConfig;
  readonly api: KubeJson;
}

export interface Fleet {
  readonly manager: LocalCluster;
  readonly managerAdmin: KubeConfig;
  readonly managerApi: KubeJson;
  readonly managerKueue: RunningKueue;
  readonly dispatcher: Dispatcher;
  readonly workers: readonly Worker[];
  readonly policy: Policy;
  worker(name: string): Worker;
  stop(): Promise<void>;
}

export interface FleetOptions {
  readonly progress?: (line: string) => void;
  readonly log?: Logger;
  /** GPUs per node (each worker has one fraction node and one whole-GPU node). */
  readonly gpusPerNode?: number;
}

function compiled(): Policy {
  const r = compilePolicy([{ name: 'fleet-policy.yaml', text: FLEET_POLICY }]);
  if (!r.ok) throw new Error(`fleet policy: ${JSON.stringify(r.problems)}`);
  return r.policy;
}

function kubeconfigOf(cluster: LocalCluster, user: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromString(cluster.kubeconfigText(user));
  return kc;
}

/** A kubeconfig MultiKueue accepts: CA data, no insecure TLS, a token (multikueuecluster.go validateKubeconfig). */
function multiKueueKubeconfig(cluster: LocalCluster): string {
  const ca = Buffer.from(readFileSync(join(cluster.dir, 'apiserver-certs', 'apiserver.crt'))).toString('base64');
  const token = /token: (\S+)/.exec(cluster.kubeconfigText(MULTIKUEUE_USER))![1]!;
  return [
    'apiVersion: v1',
    'kind: Config',
    'current-context: worker',
    'clusters:',
    '- name: worker',
    '  cluster:',
    `    server: ${cluster.server}`,
    `    certificate-authority-data: ${ca}`,
    'users:',
    '- name: multikueue',
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: worker',
    '  context: {cluster: worker, user: multikueue}',
    '',
  ].join('\n');
}

const object = (kind: string, name: string, spec: unknown, namespace?: string) => ({
  apiVersion: 'kueue.x-k8s.io/v1beta2',
  kind,
  metadata: { name, ...(namespace ? { namespace } : {}) },
  spec,
});

async function create(api: KubeJson, path: string, body: unknown): Promise<void> {
  await api.call('POST', path, body);
}

/** Tenant namespaces with their tessera.io/tenant labels, created by a platform admin. */
async function tenantNamespaces(admin: KubeConfig, extra: readonly string[] = []): Promise<void> {
  const core = admin.makeApiClient(CoreV1Api);
  for (const t of [...TENANTS, ...extra]) {
    await core.createNamespace({ body: { metadata: { name: t, labels: { 'tessera.io/tenant': t } } } });
    // No service-account controller runs here: the Job controller's pods need the namespace's default account.
    await core.createNamespacedServiceAccount({ namespace: t, body: { metadata: { name: 'default' } } });
  }
}

/** A ClusterQueue per tenant over its namespaces, counting GPU-equivalents in tessera.io/gpu-milli. */
function clusterQueue(tenant: string, flavors: { name: string; milli: number }[], checks: string[]) {
  return object('ClusterQueue', tenant, {
    namespaceSelector: { matchLabels: { 'tessera.io/tenant': tenant } },
    resourceGroups: [
      {
        coveredResources: ['cpu', 'memory', 'tessera.io/gpu-milli'],
        flavors: flavors.map((f) => ({
          name: f.name,
          resources: [
            { name: 'cpu', nominalQuota: '1000' },
            { name: 'memory', nominalQuota: '4Ti' },
            { name: 'tessera.io/gpu-milli', nominalQuota: String(f.milli) },
          ],
        })),
      },
    ],
    ...(checks.length > 0 ? { admissionChecksStrategy: { admissionChecks: checks.map((name) => ({ name })) } } : {}),
  });
}

async function localQueues(api: KubeJson): Promise<void> {
  for (const t of TENANTS)
    await create(api, `${KUEUE_API}/namespaces/${t}/localqueues`, object('LocalQueue', QUEUE, { clusterQueue: t }, t));
}

/** The worker's Kueue objects: a flavor per local Tessera pool, the gpu-fit check, a queue per tenant. */
async function workerObjects(api: KubeJson, policy: Policy, spec: WorkerSpec): Promise<void> {
  for (const name of spec.pools) {
    const pool = policy.pools.find((p) => p.name === name)!;
    await create(
      api,
      `${KUEUE_API}/resourceflavors`,
      object('ResourceFlavor', name, {
        nodeLabels: pool.nodeSelector,
        ...(pool.taint ? { tolerations: [{ ...pool.taint, operator: 'Equal' }] } : {}),
      }),
    );
  }
  await create(
    api,
    `${KUEUE_API}/admissionchecks`,
    object('AdmissionCheck', 'gpu-fit', { controllerName: GPU_FIT_CONTROLLER }),
  );
  for (const t of policy.tenants.filter((x) => (TENANTS as readonly string[]).includes(x.name))) {
    // The tenant's pools that have nodes here, in the tenant's order (Tessera's order of choice).
    const flavors = t.pools
      .filter((p) => spec.pools.includes(p))
      .map((name) => ({ name, milli: Math.round((t.quotaGpus ?? 64) * 1000) }));
    if (flavors.length === 0) continue;
    await create(api, `${KUEUE_API}/clusterqueues`, clusterQueue(t.name, flavors, ['gpu-fit']));
  }
  await localQueues(api);
}

async function managerObjects(api: KubeJson, fleet: { cluster: LocalCluster }[], names: string[]): Promise<void> {
  for (const [i, w] of fleet.entries()) {
    const name = names[i]!;
    await create(api, `/api/v1/namespaces/${KUEUE_NAMESPACE}/secrets`, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${name}-kubeconfig`, namespace: KUEUE_NAMESPACE },
      stringData: { kubeconfig: multiKueueKubeconfig(w.cluster) },
    });
    await create(
      api,
      `${KUEUE_API}/multikueueclusters`,
      object('MultiKueueCluster', name, {
        clusterSource: { kubeConfig: { locationType: 'Secret', location: `${name}-kubeconfig` } },
      }),
    );
  }
  await create(api, `${KUEUE_API}/multikueueconfigs`, object('MultiKueueConfig', 'fleet', { clusters: names }));
  await create(
    api,
    `${KUEUE_API}/admissionchecks`,
    object('AdmissionCheck', 'multikueue', {
      controllerName: 'kueue.x-k8s.io/multikueue',
      parameters: { apiGroup: 'kueue.x-k8s.io', kind: 'MultiKueueConfig', name: 'fleet' },
    }),
  );
  // One flavor on the manager: it only gates and counts; the pool is chosen on the worker that wins.
  await create(api, `${KUEUE_API}/resourceflavors`, object('ResourceFlavor', 'fleet', {}));
  for (const t of TENANTS)
    await create(
      api,
      `${KUEUE_API}/clusterqueues`,
      clusterQueue(t, [{ name: 'fleet', milli: FLEET_BUDGET[t]! * 1000 }], ['multikueue']),
    );
  await localQueues(api);
}

/** Nodes of a worker: one fraction node and one whole-GPU node per region, H100s, labelled for their pools. */
async function workerNodes(admin: KubeConfig, policy: Policy, spec: WorkerSpec, gpus: number): Promise<void> {
  const core = admin.makeApiClient(CoreV1Api);
  for (const name of spec.pools) {
    const pool = policy.pools.find((p) => p.name === name)!;
    const fraction = pool.fractionMode === 'fraction';
    await createFakeNode(
      core,
      {
        metadata: {
          name: `${name}-0`,
          labels: {
            ...pool.nodeSelector,
            'topology.kubernetes.io/region': poolRegion(pool) ?? spec.region,
            'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3',
            'nvidia.com/gpu.count': String(gpus),
            'nvidia.com/gpu.memory': '81559',
            'nvidia.com/gpu.sharing-strategy': 'none',
            'nvidia.com/mig.strategy': 'none',
            ...(fraction ? { 'tessera.io/sharing': 'fraction' } : {}),
          },
        },
        ...(pool.taint ? { spec: { taints: [pool.taint] } } : {}),
      },
      { cpu: '64', memory: '512Gi', pods: '110', ...(fraction ? {} : { 'nvidia.com/gpu': String(gpus) }) },
    );
  }
}

/**
 * The manager's Job webhook as the chart runs it (fleet.manager): Tessera's webhook, serving /mutate-job
 * (dispatcher/job-review.ts), on loopback with a leaf of the fleet's CA, registered by URL for batch/v1 Jobs in tenant
 * namespaces; its pod webhooks are not registered (the manager runs no pods). A job asking with Tessera's annotations
 * gets its countable tessera.io/gpu-milli.
 */
async function jobWebhook(manager: LocalCluster, admin: KubeConfig, ca: KeyPair, log: Logger): Promise<RunningWebhook> {
  const leaf = issueLeaf(ca, { commonName: 'tessera-webhook', dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  const certFile = join(manager.dir, 'webhook.crt');
  const keyFile = join(manager.dir, 'webhook.key');
  writeFileSync(certFile, leaf.certPem);
  writeFileSync(keyFile, leaf.keyPem);
  const policyDir = join(manager.dir, 'policy');
  mkdirSync(policyDir, { recursive: true });
  writeFileSync(join(policyDir, 'fleet-policy.yaml'), FLEET_POLICY);
  const hook = await startWebhook({
    policyDir,
    host: '127.0.0.1',
    port: 0,
    tls: { certFile, keyFile },
    kubeconfig: admin,
    systemUsers: [],
    quotaReservations: false,
    log: log.child({ cluster: 'manager', component: 'webhook' }),
  });
  // Ready: its namespace cache is synced, so a job's tenant is known from the first job on.
  await until("the manager's Tessera webhook ready", async () => hook.ready(), 60_000, 200);
  await admin.makeApiClient(AdmissionregistrationV1Api).createMutatingWebhookConfiguration({
    body: {
      metadata: { name: 'tessera' },
      webhooks: [
        {
          name: 'mutate-job.tessera.io',
          clientConfig: { url: `${hook.url}/mutate-job`, caBundle: Buffer.from(ca.certPem).toString('base64') },
          rules: [{ apiGroups: ['batch'], apiVersions: ['v1'], resources: ['jobs'], operations: ['CREATE'] }],
          namespaceSelector: { matchExpressions: [{ key: TENANT_LABEL, operator: 'Exists' }] },
          sideEffects: 'None',
          admissionReviewVersions: ['v1'],
          failurePolicy: 'Fail',
          timeoutSeconds: 10,
        },
      ],
    },
  });
  return hook;
}

export async function startFleet(o: FleetOptions = {}): Promise<Fleet> {
  const progress = o.progress ?? (() => {});
  const log = o.log ?? pino({ level: 'silent' });
  const policy = compiled();
  const build: KueueBuild = ensureKueue(progress);
  const ca: KeyPair = createCa({ commonName: 'tessera-fleet-kueue-ca' });
  const identities = [{ user: MULTIKUEUE_USER, groups: ['system:serviceaccounts', 'system:masters'] }];
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const s of stops.reverse()) await s().catch(() => {});
  };
  try {
    const workers: Worker[] = [];
    for (const spec of WORKERS) {
      progress(`worker ${spec.name}: control plane, Tessera, KWOK`);
      const stack = await startStack({
        policy: FLEET_POLICY,
        log: log.child({ cluster: spec.name }),
        progress,
        identities,
        controllers: WORKER_CONTROLLERS,
        fleet: { cluster: spec.name, region: spec.region, publishCapacity: true, gpuFitCheck: true, intervalMs: 1000 },
      });
      stops.push(() => stack.stop());
      const admin = stack.client('admin');
      await tenantNamespaces(stack.client('alice@acme.example'), ['local']);
      await workerNodes(admin, policy, spec, o.gpusPerNode ?? 2);
      progress(`worker ${spec.name}: Kueue`);
      const kueue = await startKueue(
        { cluster: stack.cluster, build, ca, config: { transformations: TRANSFORMATIONS, podsReadyTimeout: '45s' } },
        admin,
      );
      stops.push(() => kueue.stop());
      const api = new KubeJson(admin);
      await workerObjects(api, policy, spec);
      workers.push({ spec, stack, kueue, admin, api });
    }
    progress('manager: control plane, Kueue (MultiKueue), dispatcher');
    const manager = await startCluster({ log: progress, identities, controllerManager: MANAGER_CONTROLLERS });
    stops.push(() => manager.stop());
    const managerAdmin = kubeconfigOf(manager, 'admin');
    await tenantNamespaces(managerAdmin);
    const managerKueue = await startKueue(
      {
        cluster: manager,
        build,
        ca,
        config: { transformations: TRANSFORMATIONS, dispatcherName: DISPATCHER_NAME, workerLostTimeout: '60s' },
      },
      managerAdmin,
    );
    stops.push(() => managerKueue.stop());
    const managerApi = new KubeJson(managerAdmin);
    await managerObjects(
      managerApi,
      workers.map((w) => ({ cluster: w.stack.cluster })),
      workers.map((w) => w.spec.name),
    );
    const dispatcher = startDispatcher({
      kubeconfig: managerAdmin,
      policy: () => policy,
      log: log.child({ cluster: 'manager', component: 'dispatcher' }),
    });
    stops.push(async () => dispatcher.stop());
    const jobHook = await jobWebhook(manager, managerAdmin, ca, log);
    stops.push(() => jobHook.close());
    return {
      manager,
      managerAdmin,
      managerApi,
      managerKueue,
      dispatcher,
      workers,
      policy,
      worker(name) {
        const w = workers.find((x) => x.spec.name === name);
        if (!w) throw new Error(`no worker ${name}`);
        return w;
      },
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
