// Kueue as a local process per control plane, the way Tessera's webhook and extender run in the e2e stack: its CRDs
// from the Go module (config/components/crd/bases), its webhooks registered by URL against a local CA (the module's
// config/components/webhook/manifests.yaml with clientConfig.service turned into url), and a Configuration file
// (apis/config/v1beta2/configuration_types.go) with leader election off and internal certificate management off.
//
// One wrinkle of running cmd/kueue outside a Pod: with internalCertManagement off, main.go (v0.17.0, line ~206) reads
// the metrics serving certificate from the fixed path /etc/kueue/metrics/certs and exits when it is absent. Rather
// than write into the machine's /etc, the process runs in a private mount namespace with an overlay on /etc whose
// upper layer is in the cluster's directory (root only, which the harness already is for the control plane).

import { execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1MutatingWebhook,
} from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { issueLeaf, type KeyPair } from '../../certs/authority.ts';
import { freePort, type LocalCluster, startProcess, stopProcess } from '../controlplane/cluster.ts';
import type { KueueBuild } from './kueue-build.ts';

export const KUEUE_NAMESPACE = 'kueue-system';

export interface KueueConfig {
  /** MultiKueue's dispatcher (the manager only); unset: Kueue's all-at-once dispatcher. */
  readonly dispatcherName?: string;
  /** Resource transformations onto GPU-equivalents (Configuration.resources.transformations). */
  readonly transformations: readonly unknown[];
  /** How long the manager keeps a workload whose worker went silent before queueing it again. */
  readonly workerLostTimeout?: string;
  /** waitForPodsReady.timeout: an admitted workload whose pods are not all ready by then is evicted and requeued. */
  readonly podsReadyTimeout?: string;
}

export interface RunningKueue {
  readonly logFile: string;
  /** Stops the process (SIGTERM, SIGKILL after 5 s) and starts it again with the same configuration. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** The webhooks Kueue serves for its own objects and for batch/v1 Jobs (the one integration the fleet turns on). */
function ownWebhook(w: { rules?: { apiGroups?: string[]; resources?: string[] }[] }): boolean {
  return (w.rules ?? []).every(
    (r) =>
      (r.apiGroups ?? []).every((g) => g === 'kueue.x-k8s.io') ||
      ((r.apiGroups ?? []).every((g) => g === 'batch') && (r.resources ?? []).every((x) => x === 'jobs')),
  );
}

/**
 * Applies the CRDs and waits until the API serves them. Asynchronously: Tessera's webhook and extender run in this
 * process in the tests, and a synchronous child would stall them (the API server's webhook calls then time out).
 */
export async function installCrds(cluster: LocalCluster, build: KueueBuild): Promise<void> {
  const kubeconfig = cluster.kubeconfigFor('admin');
  const kubectl = (args: string[]) =>
    promisify(execFile)(cluster.binaries.kubectl, ['--kubeconfig', kubeconfig, ...args]);
  // Server-side: the Workload CRD is larger than client-side apply's last-applied annotation may be.
  await kubectl(['apply', '--server-side', ...build.crdFiles.flatMap((f) => ['-f', f])]);
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
}

/** Registers Kueue's webhooks at https://127.0.0.1:port, trusting `caPem`. */
export async function registerKueueWebhooks(admin: KubeConfig, build: KueueBuild, caPem: string, port: number) {
  const api = admin.makeApiClient(AdmissionregistrationV1Api);
  const caBundle = Buffer.from(caPem).toString('base64');
  const docs = parseAllDocuments(
    readFileSync(join(build.moduleDir, 'config', 'components', 'webhook', 'manifests.yaml'), 'utf8'),
  ).map(
    (d) =>
      d.toJS() as { kind: string; webhooks: (V1MutatingWebhook & { clientConfig: { service?: { path?: string } } })[] },
  );
  // The kustomize overlay (config/components/webhook/kustomization.yaml) keeps Kueue off kube-system and its own
  // namespace; Tessera's namespace is left alone the same way.
  const namespaceSelector = {
    matchExpressions: [
      {
        key: 'kubernetes.io/metadata.name',
        operator: 'NotIn',
        values: ['kube-system', KUEUE_NAMESPACE, 'tessera-system'],
      },
    ],
  };
  for (const doc of docs) {
    const webhooks = doc.webhooks.filter(ownWebhook).map((w) => ({
      ...w,
      clientConfig: { url: `https://127.0.0.1:${port}${w.clientConfig.service?.path ?? ''}`, caBundle },
      ...(w.rules?.some((r) => r.apiGroups?.includes('batch')) ? { namespaceSelector } : {}),
      timeoutSeconds: 10,
    }));
    if (doc.kind === 'MutatingWebhookConfiguration')
      await api.createMutatingWebhookConfiguration({ body: { metadata: { name: 'kueue-mutating' }, webhooks } });
    else if (doc.kind === 'ValidatingWebhookConfiguration')
      await api.createValidatingWebhookConfiguration({
        body: { metadata: { name: 'kueue-validating' }, webhooks: webhooks as never },
      });
  }
}

function configurationYaml(c: {
  webhookPort: number;
  healthPort: number;
  metricsPort: number;
  certDir: string;
  config: KueueConfig;
}): string {
  const cfg = {
    apiVersion: 'config.kueue.x-k8s.io/v1beta2',
    kind: 'Configuration',
    namespace: KUEUE_NAMESPACE,
    health: { healthProbeBindAddress: `127.0.0.1:${c.healthPort}` },
    metrics: { bindAddress: `127.0.0.1:${c.metricsPort}` },
    webhook: { port: c.webhookPort, host: '127.0.0.1', certDir: c.certDir },
    leaderElection: { leaderElect: false },
    internalCertManagement: { enable: false },
    manageJobsWithoutQueueName: false,
    integrations: { frameworks: ['batch/job'] },
    // Requeued after a short backoff (the default base is 60 s), so that a test sees the requeue.
    ...(c.config.podsReadyTimeout
      ? {
          waitForPodsReady: {
            timeout: c.config.podsReadyTimeout,
            requeuingStrategy: { timestamp: 'Eviction', backoffBaseSeconds: 5, backoffMaxSeconds: 30 },
          },
        }
      : {}),
    multiKueue: {
      gcInterval: '20s',
      origin: 'tessera-fleet',
      ...(c.config.workerLostTimeout ? { workerLostTimeout: c.config.workerLostTimeout } : {}),
      ...(c.config.dispatcherName ? { dispatcherName: c.config.dispatcherName } : {}),
    },
    resources: { transformations: c.config.transformations },
    featureGates: {
      // The visibility API is an aggregated API server of its own; nothing here reads it.
      VisibilityOnDemand: false,
      // An external dispatcher writes status.nominatedClusterNames with its own field manager; Kueue must then clear
      // it with a merge patch when it sets status.clusterName (the two are mutually exclusive in the CRD), which its
      // server-side apply as kueue-admission would not do (pkg/workload/workload.go patchStatus).
      WorkloadRequestUseMergePatch: true,
    },
  };
  return JSON.stringify(cfg, null, 2);
}

export interface KueueProcessOptions {
  readonly cluster: LocalCluster;
  readonly build: KueueBuild;
  readonly ca: KeyPair;
  readonly config: KueueConfig;
  /** A name for the process's files in the cluster's directory. */
  readonly name?: string;
}

/** Installs Kueue (CRDs, namespace, webhooks) into the cluster and starts its manager; resolves once it is ready. */
export async function startKueue(o: KueueProcessOptions, admin: KubeConfig): Promise<RunningKueue> {
  const dir = join(o.cluster.dir, o.name ?? 'kueue');
  const certDir = join(dir, 'certs');
  mkdirSync(certDir, { recursive: true });
  const leaf = issueLeaf(o.ca, { commonName: 'kueue-webhook', dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  writeFileSync(join(certDir, 'tls.crt'), leaf.certPem);
  writeFileSync(join(certDir, 'tls.key'), leaf.keyPem);
  const [webhookPort, healthPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const configFile = join(dir, 'config.yaml');
  writeFileSync(configFile, configurationYaml({ webhookPort, healthPort, metricsPort, certDir, config: o.config }));
  await installCrds(o.cluster, o.build);
  await admin.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: KUEUE_NAMESPACE } } });
  await registerKueueWebhooks(admin, o.build, o.ca.certPem, webhookPort);

  const logFile = join(o.cluster.dir, `${o.name ?? 'kueue'}.log`);
  const overlay = join(dir, 'etc-overlay');
  mkdirSync(join(overlay, 'upper'), { recursive: true });
  mkdirSync(join(overlay, 'work'), { recursive: true });
  const script = [
    `mount -t overlay overlay -o lowerdir=/etc,upperdir=${overlay}/upper,workdir=${overlay}/work /etc`,
    'mkdir -p /etc/kueue/metrics/certs',
    `cp ${certDir}/tls.crt ${certDir}/tls.key /etc/kueue/metrics/certs/`,
    `exec ${o.build.kueue} --config ${configFile} --zap-log-level=2`,
  ].join(' && ');
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    child = startProcess(
      o.name ?? 'kueue',
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', script],
      o.cluster.dir,
      { KUBECONFIG: o.cluster.kubeconfigFor('admin') },
    );
    const started = child;
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (started.exitCode !== null) throw new Error(`kueue exited with ${started.exitCode}; see ${logFile}`);
      const ok = await fetch(`http://127.0.0.1:${healthPort}/readyz`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`kueue not ready after 120 s; see ${logFile}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  };
  const stop = async (): Promise<void> => {
    if (child) await stopProcess(child);
    child = null;
  };
  await start();
  return {
    logFile,
    start,
    stop,
    async restart() {
      await stop();
      await start();
    },
  };
}
