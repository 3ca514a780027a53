// Tessera on a real control plane, for the end-to-end tests and the demo: etcd, kube-apiserver and kube-scheduler
// from test/controlplane, the webhook (HTTPS, registered with a CA bundle, failing closed) and the extender (called by
// kube-scheduler as `tessera-scheduler`), all as local processes or in-process servers on loopback.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { pino, type Logger } from 'pino';
import { createCa, issueLeaf, type KeyPair } from '../../certs/authority.ts';
import { startExtender, type RunningExtender } from '../../extender/server.ts';
import { startWebhook, type RunningWebhook } from '../../webhook/server.ts';
import { freePort, startCluster, type LocalCluster } from '../controlplane/cluster.ts';

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
}

export function schedulerConfig(extenderPort: number): string {
  const managed = [
    'tessera.io/gpu-milli',
    'nvidia.com/gpu',
    'nvidia.com/gpu.shared',
    'nvidia.com/mig-1g.10gb',
    'nvidia.com/mig-1g.20gb',
    'nvidia.com/mig-2g.20gb',
    'nvidia.com/mig-3g.40gb',
    'nvidia.com/mig-4g.40gb',
    'nvidia.com/mig-7g.80gb',
  ];
  return [
    'apiVersion: kubescheduler.config.k8s.io/v1',
    'kind: KubeSchedulerConfiguration',
    'profiles:',
    '- schedulerName: tessera-scheduler',
    // Pack with the extender rather than against it: kube-scheduler's default LeastAllocated scoring spreads pods.
    '  pluginConfig:',
    '  - name: NodeResourcesFit',
    '    args:',
    '      scoringStrategy:',
    '        type: MostAllocated',
    '        resources: [{name: cpu, weight: 1}, {name: memory, weight: 1}]',
    'extenders:',
    `- urlPrefix: http://127.0.0.1:${extenderPort}`,
    '  filterVerb: filter',
    '  prioritizeVerb: prioritize',
    '  bindVerb: bind',
    '  preemptVerb: preempt',
    '  weight: 10',
    '  nodeCacheCapable: true',
    '  httpTimeout: 5s',
    '  managedResources:',
    ...managed.map((m) => `  - name: ${m}\n    ignoredByScheduler: false`),
    '',
  ].join('\n');
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
  progress('starting etcd, kube-apiserver and kube-scheduler');
  const cluster = await startCluster({ log: progress });
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
    await registerWebhooks(admin, ca, webhookPort);
    progress('starting kube-scheduler as tessera-scheduler with the extender');
    await cluster.startScheduler(schedulerConfig(extenderPort));
  } catch (e) {
    await stack.stop();
    throw e;
  }
  return stack;
}

async function registerWebhooks(admin: KubeConfig, ca: KeyPair, port: number): Promise<void> {
  const api = admin.makeApiClient(AdmissionregistrationV1Api);
  const caBundle = Buffer.from(ca.certPem).toString('base64');
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
          clientConfig: { url: `https://127.0.0.1:${port}/mutate`, caBundle },
          namespaceSelector,
          rules: [
            { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] },
            { apiGroups: [''], apiVersions: ['v1'], operations: ['UPDATE'], resources: ['pods/ephemeralcontainers'] },
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
          clientConfig: { url: `https://127.0.0.1:${port}/validate`, caBundle },
          namespaceSelector,
          rules: [
            {
              apiGroups: [''],
              apiVersions: ['v1'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['pods', 'pods/ephemeralcontainers', 'namespaces'],
            },
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
          ],
        },
      ],
    },
  });
}

/**
 * Registers a GPU node the way GFD and a kubelet would leave it: labels and taints, then a status with capacity and a
 * Ready condition. The API server's TaintNodesByCondition admission adds node.kubernetes.io/not-ready on create, and
 * no node-lifecycle controller runs here to lift it, so the taints are set again after creation.
 */
export async function createFakeNode(
  core: CoreV1Api,
  node: {
    metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
    spec?: { taints?: { key: string; value?: string; effect: string }[] };
  },
  resources: Record<string, string>,
): Promise<void> {
  const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  await core.createNode({ body: node });
  await core.patchNode({ name: node.metadata.name, body: { spec: { taints: node.spec?.taints ?? null } } }, merge);
  const now = new Date().toISOString();
  const status = {
    capacity: resources,
    allocatable: resources,
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        reason: 'KubeletReady',
        message: 'simulated by Tessera',
        lastHeartbeatTime: now,
        lastTransitionTime: now,
      },
    ],
  };
  await core.patchNodeStatus({ name: node.metadata.name, body: { status } }, merge);
}
