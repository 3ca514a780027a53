// Tessera on a real control plane, for the end-to-end tests and the demo: etcd, kube-apiserver, kube-scheduler,
// kube-controller-manager and KWOK from test/controlplane and test/kwok, the webhook (HTTPS, registered with a CA
// bundle, failing closed) and the extender (called by kube-scheduler as `tessera-scheduler`), all as local processes
// or in-process servers on loopback. The GPU nodes are KWOK's: they stay Ready and their pods run, and end when asked.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1Node,
} from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { createCa, issueLeaf, type KeyPair } from '../../certs/authority.ts';
import { type FleetOptions, startExtender, type RunningExtender } from '../../extender/server.ts';
import { startWebhook, type RunningWebhook } from '../../webhook/server.ts';
import { freePort, startCluster, type KwokOptions, type LocalCluster } from '../controlplane/cluster.ts';
import {
  type LocalSchedulerOptions,
  localSchedulerConfig,
  schedulerConfigYaml,
} from '../controlplane/scheduler-config.ts';
import { kwokNodeAnnotations } from '../kwok/kwok.ts';

export const EXTENDER_USER = 'system:serviceaccount:tessera-system:tessera-extender';
export const WEBHOOK_USER = 'system:serviceaccount:tessera-system:tessera-webhook';

export interface Stack {
  readonly cluster: LocalCluster;
  readonly ca: KeyPair;
  readonly policyDir: string;
  webhook: RunningWebhook | null;
  extender: RunningExtender | null;
  readonly webhookPort: number;
  readonly extenderPort: number;
  client(user: string): KubeConfig;
  startWebhook(): Promise<void>;
  stopWebhook(): Promise<void>;
  startExtender(): Promise<void>;
  stopExtender(): Promise<void>;
  stop(): Promise<void>;
}

export interface StackOptions {
  readonly policy: string;
  readonly log?: Logger;
  readonly progress?: (line: string) => void;
  readonly kwok?: KwokOptions;
  /** kube-controller-manager's controllers (default: the Job and node-lifecycle ones); DRA tests add resourceclaim-controller. */
  readonly controllers?: readonly string[];
  /** Token identities beside the built-in ones (test/controlplane/cluster.ts). */
  readonly identities?: readonly { readonly user: string; readonly groups: readonly string[] }[];
  /** The extender's fleet duties (a worker of test/fleet/). */
  readonly fleet?: FleetOptions;
}

/**
 * The scheduler configuration the manifests ship, calling a local extender over HTTP. httpTimeout is longer than
 * shipped: on a loaded 2-core machine a bind can take seconds, and a timed-out bind only retries the pod.
 */
export function schedulerConfig(extenderPort: number, options: LocalSchedulerOptions = {}): string {
  return schedulerConfigYaml(localSchedulerConfig(extenderPort, { httpTimeout: '5s', ...options }));
}

async function untilReady(what: string, server: { ready(): boolean }, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!server.ready()) {
    if (Date.now() > deadline) throw new Error(`${what} did not become ready within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const log = options.log ?? pino({ level: 'silent' });
  const progress = options.progress ?? (() => {});
  const [webhookPort, extenderPort] = [await freePort(), await freePort()];
  progress('starting etcd, kube-apiserver, kube-controller-manager and KWOK');
  const cluster = await startCluster({
    log: progress,
    controllerManager: options.controllers ?? true,
    kwok: options.kwok ?? true,
    ...(options.identities ? { identities: options.identities } : {}),
  });
  const policyDir = join(cluster.dir, 'policy');
  mkdirSync(policyDir);
  writeFileSync(join(policyDir, 'policy.yaml'), options.policy);
  const ca = createCa({ commonName: 'tessera-e2e-ca' });
  const leaf = issueLeaf(ca, {
    commonName: 'tessera-webhook',
    dnsNames: ['tessera-webhook.tessera-system.svc', 'localhost'],
    ips: ['127.0.0.1'],
  });
  writeFileSync(join(cluster.dir, 'webhook.crt'), leaf.certPem);
  writeFileSync(join(cluster.dir, 'webhook.key'), leaf.keyPem);
  const client = (user: string): KubeConfig => {
    const kc = new KubeConfig();
    kc.loadFromString(cluster.kubeconfigText(user));
    return kc;
  };
  const admin = client('admin');
  // Who may do what: platform admins run the cluster, tenants edit their own namespaces.
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: 'platform-admins' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
      subjects: [{ kind: 'Group', name: 'platform-admins', apiGroup: 'rbac.authorization.k8s.io' }],
    },
  });
  await admin.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'tessera-system' } } });

  const stack: Stack = {
    cluster,
    ca,
    policyDir,
    webhook: null,
    extender: null,
    webhookPort,
    extenderPort,
    client,
    async startWebhook() {
      stack.webhook = await startWebhook({
        policyDir,
        host: '127.0.0.1',
        port: webhookPort,
        tls: { certFile: join(cluster.dir, 'webhook.crt'), keyFile: join(cluster.dir, 'webhook.key') },
        kubeconfig: client(WEBHOOK_USER),
        systemUsers: [EXTENDER_USER, WEBHOOK_USER],
        auditIntervalMs: 5_000,
        log: log.child({ component: 'webhook' }),
      });
      await untilReady('the webhook', stack.webhook);
    },
    async stopWebhook() {
      await stack.webhook?.close();
      stack.webhook = null;
    },
    async startExtender() {
      stack.extender = await startExtender({
        kubeconfig: client(EXTENDER_USER),
        policyDir,
        host: '127.0.0.1',
        port: extenderPort,
        leaseNamespace: 'tessera-system',
        ...(options.fleet ? { fleet: options.fleet } : {}),
        log: log.child({ component: 'extender' }),
      });
      await untilReady('the extender', stack.extender);
    },
    async stopExtender() {
      await stack.extender?.close();
      stack.extender = null;
    },
    async stop() {
      await stack.stopExtender().catch(() => {});
      await stack.stopWebhook().catch(() => {});
      await cluster.stop();
    },
  };
  try {
    progress('starting the Tessera webhook and extender');
    await stack.startWebhook();
    await stack.startExtender();
    await registerWebhooks(admin, ca.certPem, `https://127.0.0.1:${webhookPort}`);
    progress('starting kube-scheduler as tessera-scheduler with the extender');
    await cluster.startScheduler(schedulerConfig(extenderPort));
  } catch (e) {
    await stack.stop();
    throw e;
  }
  return stack;
}

/** Registers the Mutating/ValidatingWebhookConfigurations `tessera` (fail closed) at `baseUrl` (https://host:port),
 * trusting the PEM bundle `caPem` (one or more CA certificates). */
export async function registerWebhooks(admin: KubeConfig, caPem: string, baseUrl: string): Promise<void> {
  const api = admin.makeApiClient(AdmissionregistrationV1Api);
  const caBundle = Buffer.from(caPem).toString('base64');
  const namespaceSelector = {
    matchExpressions: [
      {
        key: 'kubernetes.io/metadata.name',
        operator: 'NotIn',
        values: ['kube-system', 'kube-public', 'kube-node-lease', 'tessera-system'],
      },
    ],
  };
  await api.createMutatingWebhookConfiguration({
    body: {
      metadata: { name: 'tessera' },
      webhooks: [
        {
          name: 'mutate.tessera.io',
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: 'Fail',
          timeoutSeconds: 5,
          reinvocationPolicy: 'IfNeeded',
          clientConfig: { url: `${baseUrl}/mutate`, caBundle },
          namespaceSelector,
          rules: [
            { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] },
            { apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['pods/ephemeralcontainers'] },
            // KubeVirt's VMIs and VMs where their CRDs are installed, as manifests/kubevirt registers them.
            {
              apiGroups: ['kubevirt.io'],
              apiVersions: ['v1'],
              operations: ['CREATE'],
              resources: ['virtualmachineinstances'],
            },
            {
              apiGroups: ['kubevirt.io'],
              apiVersions: ['v1'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['virtualmachines'],
            },
          ],
        },
      ],
    },
  });
  await api.createValidatingWebhookConfiguration({
    body: {
      metadata: { name: 'tessera' },
      webhooks: [
        {
          name: 'validate.tessera.io',
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: 'Fail',
          timeoutSeconds: 5,
          clientConfig: { url: `${baseUrl}/validate`, caBundle },
          namespaceSelector,
          rules: [
            {
              apiGroups: [''],
              apiVersions: ['v1'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['pods', 'pods/ephemeralcontainers', 'namespaces'],
            },
            // A Binding writes spec.nodeName and its annotations onto the pod: only Tessera binds GPU pods.
            { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods/binding', 'bindings'] },
            {
              apiGroups: ['apps'],
              apiVersions: ['v1'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['deployments', 'statefulsets', 'daemonsets', 'replicasets'],
            },
            {
              apiGroups: ['batch'],
              apiVersions: ['v1'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['jobs', 'cronjobs'],
            },
            {
              apiGroups: ['resource.k8s.io'],
              apiVersions: ['v1'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['resourceclaims', 'resourceclaimtemplates'],
            },
            // KubeVirt's VMIs and VMs, where their CRDs are installed (a rule for an unknown resource never matches).
            {
              apiGroups: ['kubevirt.io'],
              apiVersions: ['v1'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['virtualmachineinstances', 'virtualmachines'],
            },
          ],
        },
      ],
    },
  });
}

export interface FakeNode {
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { taints?: { key: string; value?: string; effect: string }[] };
}

/**
 * Registers a GPU node the way a kubelet with GFD and the device plugins would: labels (the kubelet's own and the
 * given ones), taints, and capacity and allocatable in the status it registers with. KWOK (which manages it for its kwok.tessera.io/node annotation) posts it
 * Ready and renews its Lease; kube-controller-manager's node-lifecycle controller then lifts the not-ready taint the
 * API server put on it at creation. Waits for that unless `wait` is false (see waitForNodesReady).
 */
export async function createFakeNode(
  core: CoreV1Api,
  node: FakeNode,
  resources: Record<string, string>,
  wait = true,
): Promise<void> {
  const body: V1Node = {
    metadata: {
      ...node.metadata,
      // The labels a kubelet registers with.
      labels: {
        'kubernetes.io/hostname': node.metadata.name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        ...node.metadata.labels,
      },
      annotations: { ...node.metadata.annotations, ...kwokNodeAnnotations() },
    },
    ...(node.spec ? { spec: node.spec } : {}),
    status: { capacity: resources, allocatable: resources },
  };
  await core.createNode({ body });
  if (wait) await waitForNodesReady(core, [node.metadata.name]);
}

/** A node is schedulable: Ready, and without the taints the API server and the node-lifecycle controller add. */
export function nodeSchedulable(n: V1Node): boolean {
  const ready = n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  return ready && !(n.spec?.taints ?? []).some((t) => t.key.startsWith('node.kubernetes.io/'));
}

/** Waits until all the named nodes are Ready and untainted by the node lifecycle. */
export async function waitForNodesReady(core: CoreV1Api, names: readonly string[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const byName = new Map((await core.listNode()).items.map((n) => [n.metadata!.name!, n]));
    const waiting = names.filter((name) => !nodeSchedulable(byName.get(name) ?? {}));
    if (waiting.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(
        `nodes not Ready (KWOK) or still tainted after ${timeoutMs / 1000} s: ${waiting.slice(0, 10).join(', ')}${waiting.length > 10 ? ', ...' : ''}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}
