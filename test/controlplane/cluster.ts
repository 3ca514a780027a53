// A local Kubernetes control plane for end-to-end tests and the demo: etcd, kube-apiserver (RBAC on, real
// service-account tokens) and optionally kube-scheduler, kube-controller-manager (the Job and node-lifecycle
// controllers) and KWOK (the kubelet of the fake GPU nodes, see test/kwok/), on loopback ports chosen free, in a
// temporary directory.
// Teardown is reliable: every child runs in its own process group, is killed on stop() and on process exit, and a
// later run reaps the children of a harness that died without cleaning up.

import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureControlPlane, ensureControllerManager, type ControlPlaneBinaries } from './build.ts';
import { ensureKwok } from '../kwok/build.ts';
import { kwokArgs } from '../kwok/kwok.ts';

const REGISTRY = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '.cache', 'controlplane', 'running');

export interface ClusterOptions {
  /** Start kube-scheduler too. */
  readonly scheduler?: boolean;
  /** A KubeSchedulerConfiguration (YAML) for kube-scheduler; its clientConnection.kubeconfig is filled in. */
  readonly schedulerConfig?: string;
  /** Extra kube-apiserver flags, e.g. for admission plugins. */
  readonly apiserverFlags?: readonly string[];
  /** Start kube-controller-manager too: `true` for the Job and node-lifecycle controllers, or the controllers to run. */
  readonly controllerManager?: boolean | readonly string[];
  /** Start KWOK too, to run the nodes annotated kwok.tessera.io/node=fake and the pods bound to them. */
  readonly kwok?: boolean | KwokOptions;
  /** Extra kube-controller-manager flags, e.g. --root-ca-file for the kube-root-ca.crt ConfigMaps of real pods. */
  readonly controllerManagerFlags?: readonly string[];
  /** Token identities beside the built-in ones, e.g. a real kubelet's system:node:NAME in group system:nodes. */
  readonly identities?: readonly { readonly user: string; readonly groups: readonly string[] }[];
  readonly log?: (line: string) => void;
}

export interface KwokOptions {
  /** The node Leases' duration (default 40 s, the kubelet's). A restarted KWOK takes over a node when the Lease the
   * previous process held on it expires, so this bounds how long the nodes' pods stand still across a restart. */
  readonly leaseDurationSeconds?: number;
}

/** kube-controller-manager's controllers that tests need: Jobs run to completion, and nodes lose the not-ready taint
 * once Ready (and are tainted and drained when their Lease stops being renewed, as in a cluster). */
export const DEFAULT_CONTROLLERS: readonly string[] = ['job-controller', 'node-lifecycle-controller'];

export interface Identity {
  readonly user: string;
  readonly token: string;
  readonly groups: readonly string[];
}

export interface LocalCluster {
  readonly dir: string;
  readonly server: string;
  readonly binaries: ControlPlaneBinaries;
  /** The admin identity (system:masters). */
  readonly admin: Identity;
  /** A kubeconfig file for an identity created at start (see `identities`). */
  kubeconfigFor(user: string): string;
  /** kubeconfig YAML text for an identity. */
  kubeconfigText(user: string): string;
  startScheduler(config?: string): Promise<void>;
  stopScheduler(): Promise<void>;
  startControllerManager(controllers?: readonly string[]): Promise<void>;
  stopControllerManager(): Promise<void>;
  /** Starts KWOK (building it on first use) and waits for its health endpoint; a running KWOK is stopped first. */
  startKwok(options?: KwokOptions): Promise<void>;
  /** Stops KWOK (SIGTERM to its process group, SIGKILL after 5 s). The nodes' Leases then stop being renewed. */
  stopKwok(): Promise<void>;
  /** Stops and starts KWOK again, with the options it last ran with unless others are given: a node restart fault. */
  restartKwok(options?: KwokOptions): Promise<void>;
  /** KWOK's log (kwok.log in the cluster's directory, appended to across restarts). */
  readonly kwokLog: string;
  /** Stops kube-apiserver (SIGTERM, SIGKILL after 5 s) and starts it again with the same flags, port, certificates
   * and etcd, then waits for /readyz: a control-plane restart fault. Clients reconnect by themselves. */
  restartApiserver(): Promise<void>;
  /** Stops kube-apiserver (a cluster down), and starts it again as restartApiserver does. */
  stopApiserver(): Promise<void>;
  startApiserver(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Kills the children of harnesses whose own process is gone (a test runner killed with SIGKILL, say). */
export function reapOrphans(): number {
  if (!existsSync(REGISTRY)) return 0;
  let reaped = 0;
  for (const file of readdirSync(REGISTRY)) {
    const owner = Number(file.replace(/\.json$/, ''));
    if (!Number.isInteger(owner) || alive(owner)) continue;
    try {
      const { children } = JSON.parse(readFileSync(join(REGISTRY, file), 'utf8')) as { children: number[] };
      for (const pid of children)
        if (alive(pid)) {
          killGroup(pid, 'SIGKILL');
          reaped++;
        }
    } catch {
      // unreadable registry entry: drop it
    }
    rmSync(join(REGISTRY, file), { force: true });
  }
  return reaped;
}

const children = new Set<ChildProcess>();

function record(): void {
  mkdirSync(REGISTRY, { recursive: true });
  const file = join(REGISTRY, `${process.pid}.json`);
  const pids = [...children].map((c) => c.pid).filter((p): p is number => p !== undefined);
  if (pids.length === 0) rmSync(file, { force: true });
  else writeFileSync(file, JSON.stringify({ children: pids }));
}

process.once('exit', () => {
  for (const c of children) if (c.pid !== undefined) killGroup(c.pid, 'SIGKILL');
  try {
    unlinkSync(join(REGISTRY, `${process.pid}.json`));
  } catch {
    // nothing registered
  }
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const c of children) if (c.pid !== undefined) killGroup(c.pid, 'SIGKILL');
    process.exit(130);
  });
}

/** Starts a child in its own process group, logging to NAME.log in `dir`; it is killed when this process exits, and
 * reaped by a later run if this process dies without cleaning up. */
export function startProcess(
  name: string,
  binary: string,
  args: string[],
  dir: string,
  env?: Record<string, string>,
): ChildProcess {
  const out = openSync(join(dir, `${name}.log`), 'a');
  const child = spawn(binary, args, {
    detached: true,
    stdio: ['ignore', out, out],
    ...(env ? { env: { ...process.env, ...env } } : {}),
  });
  closeSync(out);
  children.add(child);
  child.once('exit', () => {
    children.delete(child);
    record();
  });
  record();
  return child;
}

/** SIGTERM to the child's process group, SIGKILL after 5 s; resolves once it has exited. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  killGroup(child.pid, 'SIGTERM');
  const timer = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  child: ChildProcess,
  logFile: string,
  timeoutMs = 90_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`${what} exited with ${child.exitCode}; last log lines:\n${tail(logFile)}`);
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} not ready after ${timeoutMs / 1000} s; last log lines:\n${tail(logFile)}`);
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-25).join('\n');
  } catch {
    return '(no log)';
  }
}

async function httpsOk(url: string, token: string): Promise<boolean> {
  // Readiness probe only: the apiserver serves a certificate it generated itself, on loopback.
  const { request } = await import('node:https');
  return new Promise((resolve) => {
    const req = request(
      url,
      { headers: { authorization: `Bearer ${token}` }, rejectUnauthorized: false, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

const IDENTITIES: readonly { user: string; groups: string[] }[] = [
  { user: 'admin', groups: ['system:masters'] },
  // Tessera's own components; end-to-end tests give them broad rights, manifests/ carries the least-privilege RBAC.
  {
    user: 'system:serviceaccount:tessera-system:tessera-extender',
    groups: ['system:serviceaccounts', 'system:masters'],
  },
  {
    user: 'system:serviceaccount:tessera-system:tessera-webhook',
    groups: ['system:serviceaccounts', 'system:masters'],
  },
  { user: 'system:kube-scheduler', groups: [] },
  // Every controller runs under kube-controller-manager's own credentials (no per-controller service accounts here).
  { user: 'system:kube-controller-manager', groups: ['system:masters'] },
  { user: 'alice@acme.example', groups: ['platform-admins'] },
  { user: 'bob@acme.example', groups: ['researchers'] },
  { user: 'carol@acme.example', groups: ['payments'] },
  { user: 'mallory@acme.example', groups: ['researchers'] },
  { user: 'dave@acme.example', groups: ['genomics'] },
];

export async function startCluster(options: ClusterOptions = {}): Promise<LocalCluster> {
  const log = options.log ?? (() => {});
  reapOrphans();
  const binaries = ensureControlPlane(log);
  // The gates this Kubernetes version needs for what the suites test (test/controlplane/k8s-<minor>/feature-gates).
  const gates = binaries.featureGates.length > 0 ? ['--feature-gates', binaries.featureGates.join(',')] : [];
  const dir = mkdtempSync(join(tmpdir(), 'tessera-cp-'));
  const tokens = new Map(
    [...IDENTITIES, ...(options.identities ?? [])].map((i) => [
      i.user,
      { user: i.user, groups: [...i.groups], token: randomBytes(16).toString('hex') },
    ]),
  );
  writeFileSync(
    join(dir, 'tokens.csv'),
    [...tokens.values()].map((i) => `${i.token},${i.user},${i.user},"${i.groups.join(',')}"`).join('\n') + '\n',
    { mode: 0o600 },
  );
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));

  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcd = startProcess(
    'etcd',
    binaries.etcd,
    [
      '--name',
      'tessera',
      '--data-dir',
      join(dir, 'etcd'),
      '--listen-client-urls',
      `http://127.0.0.1:${etcdClient}`,
      '--advertise-client-urls',
      `http://127.0.0.1:${etcdClient}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${etcdPeer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${etcdPeer}`,
      '--initial-cluster',
      `tessera=http://127.0.0.1:${etcdPeer}`,
      '--log-level',
      'warn',
      '--unsafe-no-fsync',
    ],
    dir,
  );
  let scheduler: ChildProcess | null = null;
  let controllerManager: ChildProcess | null = null;
  let kwok: ChildProcess | null = null;
  let apiserver: ChildProcess | null = null;
  const stopAll = async (): Promise<void> => {
    if (kwok) await stopProcess(kwok);
    if (controllerManager) await stopProcess(controllerManager);
    if (scheduler) await stopProcess(scheduler);
    if (apiserver) await stopProcess(apiserver);
    await stopProcess(etcd);
  };
  await waitFor(
    'etcd',
    async () => (await fetch(`http://127.0.0.1:${etcdClient}/health`)).ok,
    etcd,
    join(dir, 'etcd.log'),
  );

  const apiserverArgs = [
    '--etcd-servers',
    `http://127.0.0.1:${etcdClient}`,
    '--bind-address',
    '127.0.0.1',
    '--advertise-address',
    '127.0.0.1',
    '--secure-port',
    String(apiPort),
    '--cert-dir',
    join(dir, 'apiserver-certs'),
    '--token-auth-file',
    join(dir, 'tokens.csv'),
    '--authorization-mode',
    'Node,RBAC',
    '--service-account-issuer',
    'https://kubernetes.default.svc.cluster.local',
    '--service-account-key-file',
    join(dir, 'sa.pub'),
    '--service-account-signing-key-file',
    join(dir, 'sa.key'),
    '--service-cluster-ip-range',
    '10.96.0.0/16',
    '--allow-privileged=true',
    '--profiling=false',
    '--endpoint-reconciler-type',
    'none',
    '--enable-priority-and-fairness=false',
    '--max-requests-inflight',
    '2000',
    '--max-mutating-requests-inflight',
    '1000',
    ...gates,
    ...(options.apiserverFlags ?? []),
  ];
  const server = `https://127.0.0.1:${apiPort}`;
  const admin = tokens.get('admin')!;
  // The same flags, port, serving certificates (generated into cert-dir on the first start) and etcd on every start.
  const startApiserver = async (): Promise<ChildProcess> => {
    const child = startProcess('kube-apiserver', binaries.apiserver, apiserverArgs, dir);
    await waitFor(
      'kube-apiserver',
      () => httpsOk(`${server}/readyz`, admin.token),
      child,
      join(dir, 'kube-apiserver.log'),
      120_000,
    );
    return child;
  };
  try {
    apiserver = await startApiserver();
  } catch (e) {
    await stopAll();
    throw e;
  }

  const kubeconfigText = (user: string): string => {
    const id = tokens.get(user);
    if (!id) throw new Error(`no identity ${user}; known: ${[...tokens.keys()].join(', ')}`);
    return [
      'apiVersion: v1',
      'kind: Config',
      'current-context: local',
      'clusters:',
      `- name: local`,
      '  cluster:',
      `    server: ${server}`,
      '    insecure-skip-tls-verify: true',
      'users:',
      `- name: ${JSON.stringify(user)}`,
      '  user:',
      `    token: ${id.token}`,
      'contexts:',
      '- name: local',
      '  context:',
      '    cluster: local',
      `    user: ${JSON.stringify(user)}`,
      '',
    ].join('\n');
  };
  const kubeconfigFor = (user: string): string => {
    const file = join(dir, `kubeconfig-${user.replace(/[^a-z0-9.-]/gi, '_')}`);
    if (!existsSync(file)) writeFileSync(file, kubeconfigText(user), { mode: 0o600 });
    return file;
  };

  const startScheduler = async (config?: string): Promise<void> => {
    if (scheduler) await stopProcess(scheduler);
    const kubeconfig = kubeconfigFor('system:kube-scheduler');
    const port = await freePort();
    const text =
      (
        config ??
        options.schedulerConfig ??
        'apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n'
      ).replace(/\n?$/, '\n') +
      `clientConnection:\n  kubeconfig: ${kubeconfig}\n  qps: 2000\n  burst: 4000\nleaderElection:\n  leaderElect: false\n`;
    writeFileSync(join(dir, 'scheduler.yaml'), text);
    scheduler = startProcess(
      'kube-scheduler',
      binaries.scheduler,
      [
        '--config',
        join(dir, 'scheduler.yaml'),
        '--bind-address',
        '127.0.0.1',
        '--secure-port',
        String(port),
        '--authentication-kubeconfig',
        kubeconfig,
        '--authorization-kubeconfig',
        kubeconfig,
        ...gates,
        '--v',
        '1',
      ],
      dir,
    );
    const started = scheduler;
    await waitFor(
      'kube-scheduler',
      () => httpsOk(`https://127.0.0.1:${port}/healthz`, ''),
      started,
      join(dir, 'kube-scheduler.log'),
    );
  };
  const stopScheduler = async (): Promise<void> => {
    if (scheduler) await stopProcess(scheduler);
    scheduler = null;
  };
  const startControllerManager = async (controllers: readonly string[] = DEFAULT_CONTROLLERS): Promise<void> => {
    if (controllerManager) await stopProcess(controllerManager);
    const { controllerManager: binary } = ensureControllerManager(log);
    const kubeconfig = kubeconfigFor('system:kube-controller-manager');
    const port = await freePort();
    controllerManager = startProcess(
      'kube-controller-manager',
      binary,
      [
        '--kubeconfig',
        kubeconfig,
        '--authentication-kubeconfig',
        kubeconfig,
        '--authorization-kubeconfig',
        kubeconfig,
        '--controllers',
        controllers.join(','),
        '--use-service-account-credentials=false',
        '--leader-elect=false',
        '--bind-address',
        '127.0.0.1',
        '--secure-port',
        String(port),
        '--kube-api-qps',
        '1000',
        '--kube-api-burst',
        '2000',
        ...gates,
        '--v',
        '1',
        ...(options.controllerManagerFlags ?? []),
      ],
      dir,
    );
    const started = controllerManager;
    await waitFor(
      'kube-controller-manager',
      () => httpsOk(`https://127.0.0.1:${port}/healthz`, ''),
      started,
      join(dir, 'kube-controller-manager.log'),
    );
  };
  const stopControllerManager = async (): Promise<void> => {
    if (controllerManager) await stopProcess(controllerManager);
    controllerManager = null;
  };

  const kwokLog = join(dir, 'kwok.log');
  let kwokOptions: KwokOptions = typeof options.kwok === 'object' ? options.kwok : {};
  const startKwok = async (o: KwokOptions = kwokOptions): Promise<void> => {
    if (kwok) await stopProcess(kwok);
    kwokOptions = o;
    const binary = ensureKwok(log).kwok;
    const port = await freePort();
    const args = kwokArgs({
      kubeconfig: kubeconfigFor('admin'),
      serverPort: port,
      ...(o.leaseDurationSeconds !== undefined ? { leaseDurationSeconds: o.leaseDurationSeconds } : {}),
    });
    // KWOK_WORKDIR: never pick up a ~/.kwok/kwok.yaml of the machine's user.
    kwok = startProcess('kwok', binary, args, dir, { KWOK_WORKDIR: join(dir, 'kwok') });
    const started = kwok;
    await waitFor('kwok', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, started, kwokLog);
  };
  const stopKwok = async (): Promise<void> => {
    if (kwok) await stopProcess(kwok);
    kwok = null;
  };

  try {
    if (options.scheduler) await startScheduler();
    if (options.controllerManager)
      await startControllerManager(
        options.controllerManager === true ? DEFAULT_CONTROLLERS : options.controllerManager,
      );
    if (options.kwok) await startKwok();
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    dir,
    server,
    binaries,
    admin: { user: admin.user, token: admin.token, groups: admin.groups },
    kubeconfigFor,
    kubeconfigText,
    startScheduler,
    stopScheduler,
    startControllerManager,
    stopControllerManager,
    startKwok,
    stopKwok,
    async restartKwok(o?: KwokOptions) {
      await stopKwok();
      await startKwok(o ?? kwokOptions);
    },
    kwokLog,
    async restartApiserver() {
      if (apiserver) await stopProcess(apiserver);
      apiserver = null;
      apiserver = await startApiserver();
    },
    async stopApiserver() {
      if (apiserver) await stopProcess(apiserver);
      apiserver = null;
    },
    async startApiserver() {
      apiserver ??= await startApiserver();
    },
    async stop() {
      await stopAll();
      if (!process.env.TESSERA_KEEP_CLUSTER_DIR) rmSync(dir, { recursive: true, force: true });
    },
  };
}
