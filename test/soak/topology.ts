// The soak's cluster: etcd, kube-apiserver, kube-scheduler (as tessera-scheduler), kube-controller-manager (Jobs, node
// lifecycle, garbage collection, finished-Job TTL) and KWOK with a 10 s node lease; two webhook replicas (HTTPS,
// certificates from `tessera certs`) behind one Service stand-in registered fail-closed in the webhook configurations;
// two leader-elected extender replicas behind another that selects the leader's pod label, called by kube-scheduler; a GPU fleet in the example policy's
// four pools, small enough that tenants contend for it; three tenants' namespaces made by the platform admin.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  SchedulingV1Api,
} from '@kubernetes/client-node';
import { DEFAULT_CONTROLLERS, freePort, startCluster, type LocalCluster } from '../controlplane/cluster.ts';
import {
  createFakeNode,
  EXTENDER_USER,
  registerWebhooks,
  schedulerConfig,
  waitForNodesReady,
  WEBHOOK_USER,
} from '../e2e/stack.ts';
import { caBundle, issueCerts, type CertRun } from './certs.ts';
import { LEADER_ROLE, ROLE_LABEL } from '../../extender/role-label.ts';
import { Replica, until } from './replicas.ts';
import { startServiceProxy, type ServiceProxy } from './service-proxy.ts';

export const EXAMPLE_POLICY = new URL('../../../shared/examples/policy.yaml', import.meta.url);
export const SOAK_POLICY = new URL('./soak-tenants.yaml', import.meta.url);
/** The policy directory's files: the example policy as it is, and the soak's third tenant. */
export const POLICY_FILES: Readonly<Record<string, string>> = {
  'policy.yaml': readFileSync(EXAMPLE_POLICY, 'utf8'),
  'soak-tenants.yaml': readFileSync(SOAK_POLICY, 'utf8'),
};

export const PRIORITY_CLASSES: Readonly<Record<string, number>> = {
  'research-batch': 100,
  'research-interactive': 1000,
  'payments-serving': 500,
};

/** Namespace -> tenant and the user who submits there. */
export const NAMESPACES: Readonly<Record<string, { tenant: string; user: string }>> = {
  vision: { tenant: 'research', user: 'bob@acme.example' },
  nlp: { tenant: 'research', user: 'bob@acme.example' },
  risk: { tenant: 'payments-ml', user: 'carol@acme.example' },
  genomics: { tenant: 'genomics', user: 'dave@acme.example' },
};

interface FleetNode {
  readonly name: string;
  readonly pool: string;
  readonly labels: Record<string, string>;
  readonly resources: Record<string, string>;
}

const gfd = (product: string, count: number, memory: number, extra: Record<string, string> = {}) => ({
  'nvidia.com/gpu.product': product,
  'nvidia.com/gpu.count': String(count),
  'nvidia.com/gpu.memory': String(memory),
  ...extra,
});
const HOST = { cpu: '64', memory: '512Gi', pods: '110' };

/** 8 fraction H100s, 2 MIG A100s (all-balanced), 2 time-sliced L4s (8 replicas), 2 whole EU H100s. */
export const FLEET: readonly FleetNode[] = [
  ...['h100-0', 'h100-1', 'h100-2', 'h100-3'].map((name) => ({
    name,
    pool: 'shared-h100',
    labels: {
      ...gfd('NVIDIA-H100-80GB-HBM3', 2, 81559, { 'nvidia.com/gpu.sharing-strategy': 'none' }),
      'tessera.io/sharing': 'fraction',
    },
    resources: HOST,
  })),
  {
    name: 'a100-0',
    pool: 'a100-mig',
    labels: gfd('NVIDIA-A100-SXM4-80GB', 2, 81920, {
      'nvidia.com/mig.strategy': 'mixed',
      'nvidia.com/mig.config': 'all-balanced',
      'nvidia.com/mig-1g.10gb.count': '4',
      'nvidia.com/mig-2g.20gb.count': '2',
      'nvidia.com/mig-3g.40gb.count': '2',
    }),
    resources: { ...HOST, 'nvidia.com/mig-1g.10gb': '4', 'nvidia.com/mig-2g.20gb': '2', 'nvidia.com/mig-3g.40gb': '2' },
  },
  {
    name: 'l4-0',
    pool: 'l4-timesliced',
    labels: gfd('NVIDIA-L4', 2, 23034, {
      'nvidia.com/gpu.sharing-strategy': 'time-slicing',
      'nvidia.com/gpu.replicas': '4',
    }),
    resources: { ...HOST, 'nvidia.com/gpu.shared': '8' },
  },
  {
    name: 'eu-h100-0',
    pool: 'sovereign-eu',
    labels: {
      ...gfd('NVIDIA-H100-80GB-HBM3', 2, 81559, { 'nvidia.com/gpu.sharing-strategy': 'none' }),
      'topology.kubernetes.io/region': 'eu-central',
    },
    resources: { ...HOST, 'nvidia.com/gpu': '2' },
  },
];

export interface Topology {
  readonly cluster: LocalCluster;
  readonly policyDir: string;
  readonly certDir: string;
  readonly certRuns: readonly CertRun[];
  readonly webhooks: readonly Replica[];
  readonly extenders: readonly Replica[];
  readonly webhookProxy: ServiceProxy;
  readonly extenderProxy: ServiceProxy;
  /** kube-scheduler's configuration: the extender behind its Service stand-in. */
  readonly schedulerConfig: string;
  client(user: string): KubeConfig;
  /** Patches both webhook configurations' caBundle, as the platform does after a rotation added or dropped a CA. */
  publishCaBundle(pem: string): Promise<void>;
  stop(): Promise<void>;
}

export interface TopologyOptions {
  readonly start: Date;
  readonly progress: (line: string) => void;
}

export async function startTopology(options: TopologyOptions): Promise<Topology> {
  const { progress } = options;
  progress('starting etcd, kube-apiserver, kube-controller-manager and KWOK (node lease 10 s)');
  const cluster = await startCluster({
    log: progress,
    controllerManager: [...DEFAULT_CONTROLLERS, 'garbage-collector-controller', 'ttl-after-finished-controller'],
    kwok: { leaseDurationSeconds: 10 },
  });
  const replicas: Replica[] = [];
  const proxies: ServiceProxy[] = [];
  const stop = async () => {
    await cluster.stopScheduler().catch(() => {});
    for (const p of proxies) await p.close().catch(() => {});
    for (const r of replicas) await r.stop().catch(() => {});
    await cluster.stop();
  };
  try {
    const client = (user: string): KubeConfig => {
      const kc = new KubeConfig();
      kc.loadFromString(cluster.kubeconfigText(user));
      return kc;
    };
    const admin = client('admin');
    await admin.makeApiClient(RbacAuthorizationV1Api).createClusterRoleBinding({
      body: {
        metadata: { name: 'platform-admins' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
        subjects: [{ kind: 'Group', name: 'platform-admins', apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
    await admin.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'tessera-system' } } });

    const policyDir = join(cluster.dir, 'policy');
    mkdirSync(policyDir);
    for (const [name, text] of Object.entries(POLICY_FILES)) writeFileSync(join(policyDir, name), text);
    const certDir = join(cluster.dir, 'webhook-tls');
    progress('tessera certs issue: the webhook serving certificate and its CA');
    const certRuns = issueCerts(certDir, options.start);

    progress('starting 2 webhook and 2 extender replicas (tessera serve), each behind a Service stand-in');
    // Each replica keeps its last good policy in a directory of its own, as the manifests' emptyDir: a replica killed
    // while the files are broken comes back serving it.
    const webhookArgs = (name: string) => [
      '--policy-dir',
      policyDir,
      '--policy-cache-dir',
      join(cluster.dir, `${name}-policy-cache`),
      '--tls-cert',
      join(certDir, 'tls.crt'),
      '--tls-key',
      join(certDir, 'tls.key'),
      '--system-user',
      EXTENDER_USER,
      '--system-user',
      WEBHOOK_USER,
      '--kubeconfig',
      cluster.kubeconfigFor(WEBHOOK_USER),
      '--audit-interval',
      '30',
    ];
    const extenderArgs = (pod: string) => [
      '--policy-dir',
      policyDir,
      '--policy-cache-dir',
      join(cluster.dir, `${pod}-policy-cache`),
      '--lease-namespace',
      'tessera-system',
      '--pod-name',
      pod,
      '--kubeconfig',
      cluster.kubeconfigFor(EXTENDER_USER),
    ];
    // Each extender replica's pod, as its Deployment would make it: the leader labels its own (tessera.io/extender-role)
    // and the Service stand-in selects that label. No scheduler is named to run them: the replicas are the processes.
    const core = admin.makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({
      namespace: 'tessera-system',
      body: { metadata: { name: 'tessera-extender' } },
    });
    for (const suffix of ['a', 'b'])
      await core.createNamespacedPod({
        namespace: 'tessera-system',
        body: {
          metadata: { name: `tessera-extender-${suffix}`, labels: { 'app.kubernetes.io/name': 'tessera-extender' } },
          spec: {
            serviceAccountName: 'tessera-extender',
            automountServiceAccountToken: false,
            schedulerName: 'soak-replica-process',
            containers: [{ name: 'extender', image: 'tessera' }],
          },
        },
      });
    const webhooks: Replica[] = [];
    const extenders: Replica[] = [];
    for (const suffix of ['a', 'b']) {
      const wp = await freePort();
      webhooks.push(
        new Replica({
          name: `webhook-${suffix}`,
          kind: 'webhook',
          port: wp,
          args: webhookArgs(`webhook-${suffix}`),
          dir: cluster.dir,
          readyUrl: `https://127.0.0.1:${wp}/readyz`,
        }),
      );
      const ep = await freePort();
      extenders.push(
        new Replica({
          name: `extender-${suffix}`,
          kind: 'extender',
          port: ep,
          args: extenderArgs(`tessera-extender-${suffix}`),
          dir: cluster.dir,
          readyUrl: `http://127.0.0.1:${ep}/readyz`,
        }),
      );
    }
    replicas.push(...webhooks, ...extenders);
    for (const r of replicas) r.start();
    const webhookProxy = await startServiceProxy(() => webhooks);
    const extenderProxy = await startServiceProxy(
      () => extenders,
      500,
      async (list) => {
        const leaders = await core.listNamespacedPod({
          namespace: 'tessera-system',
          labelSelector: `app.kubernetes.io/name=tessera-extender,${ROLE_LABEL}=${LEADER_ROLE}`,
        });
        const names = new Set(leaders.items.map((x) => x.metadata?.name));
        return list.filter((r) => names.has(`tessera-extender-${r.name.replace(/^extender-/, '')}`));
      },
    );
    proxies.push(webhookProxy, extenderProxy);
    const allReady = async (rs: readonly Replica[], n: number) =>
      (await Promise.all(rs.map((r) => r.ready()))).filter(Boolean).length >= n;
    if (!(await until(() => allReady(webhooks, 2), 90_000)))
      throw new Error(`the webhook replicas did not become ready; see ${cluster.dir}/webhook-*.log`);
    if (!(await until(() => allReady(extenders, 2), 90_000)))
      throw new Error(`the extender replicas did not become ready; see ${cluster.dir}/extender-*.log`);
    if (!(await until(() => extenderProxy.ready().length === 1, 30_000)))
      throw new Error(`no extender replica labelled its pod leader; see ${cluster.dir}/extender-*.log`);

    const webhookUrl = `https://127.0.0.1:${webhookProxy.port}`;
    await registerWebhooks(admin, caBundle(certDir), webhookUrl);
    const config = schedulerConfig(extenderProxy.port);
    progress('starting kube-scheduler as tessera-scheduler, calling the extender through its Service stand-in');
    await cluster.startScheduler(config);

    progress('alice (platform admin) creates the priority classes and the tenant namespaces');
    await setUpTenancy(client);
    progress(`registering the GPU fleet (${FLEET.length} nodes, run by KWOK)`);
    for (const n of FLEET)
      await createFakeNode(
        core,
        {
          metadata: { name: n.name, labels: { ...n.labels, 'tessera.io/pool': n.pool } },
          spec: { taints: [{ key: 'tessera.io/pool', value: n.pool, effect: 'NoSchedule' }] },
        },
        n.resources,
        false,
      );
    await waitForNodesReady(
      core,
      FLEET.map((n) => n.name),
    );
    const fraction = FLEET.filter((n) => n.labels['tessera.io/sharing'] === 'fraction').map((n) => n.name);
    const advertised = await until(async () => {
      const nodes = (await core.listNode()).items.filter((n) => fraction.includes(n.metadata?.name ?? ''));
      return nodes.length === fraction.length && nodes.every((n) => n.status?.allocatable?.['tessera.io/gpu-milli']);
    }, 60_000);
    if (!advertised) throw new Error('the extender did not advertise tessera.io/gpu-milli on the fraction nodes');

    const registrations = admin.makeApiClient(AdmissionregistrationV1Api);
    return {
      cluster,
      policyDir,
      certDir,
      certRuns,
      webhooks,
      extenders,
      webhookProxy,
      extenderProxy,
      schedulerConfig: config,
      client,
      async publishCaBundle(pem) {
        const patch = [
          { op: 'replace', path: '/webhooks/0/clientConfig/caBundle', value: Buffer.from(pem).toString('base64') },
        ];
        await registrations.patchMutatingWebhookConfiguration({ name: 'tessera', body: patch });
        await registrations.patchValidatingWebhookConfiguration({ name: 'tessera', body: patch });
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** What the platform admin sets up: priority classes, tenant namespaces (labelled through the webhook's namespace
 * guard), their default service accounts, and the tenants' right to manage pods and Jobs in their namespaces. */
async function setUpTenancy(client: (user: string) => KubeConfig): Promise<void> {
  const alice = client('alice@acme.example');
  const scheduling = alice.makeApiClient(SchedulingV1Api);
  for (const [name, value] of Object.entries(PRIORITY_CLASSES))
    await scheduling.createPriorityClass({ body: { metadata: { name }, value } });
  const rbac = alice.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRole({
    body: {
      metadata: { name: 'tenant-user' },
      rules: [
        {
          apiGroups: [''],
          resources: ['pods'],
          verbs: ['get', 'list', 'watch', 'create', 'delete', 'deletecollection'],
        },
        { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
      ],
    },
  });
  const core = alice.makeApiClient(CoreV1Api);
  for (const [name, { tenant, user }] of Object.entries(NAMESPACES)) {
    await core.createNamespace({ body: { metadata: { name, labels: { 'tessera.io/tenant': tenant } } } });
    await core.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: 'default' } } });
    await rbac.createNamespacedRoleBinding({
      namespace: name,
      body: {
        metadata: { name: 'tenant-user' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'tenant-user' },
        subjects: [{ kind: 'User', name: user, apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
  }
}
