// The real-node stack, phase by phase, each timed: packages, builds, host, control plane (with KWOK for the GPU
// nodes), the real node, images, Tessera installed from the shipped manifests, and its pods Ready. stop() undoes it
// all, also when a phase fails half-way, and runs on process exit too.

import { CoreV1Api, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { type LocalCluster, reapOrphans, startCluster } from '../controlplane/cluster.ts';
import {
  ensureGpuReporterImage,
  ensureNodeBinaries,
  ensurePauseImage,
  ensureSchedulerImage,
  ensureTesseraImage,
} from './build.ts';
import { CONTAINERD_VERSION, ensureContainerd } from './containerd.ts';
import { createFakeGpus, type FakeGpus } from './fake-gpus.ts';
import { ensurePackages, HostChanges, reapStaleNodes } from './host.ts';
import { type Installed, installMethod, installTessera, installWithHelm, kubectlFor } from './install.ts';
import { clusterOptionsForNode, prepareHost, type RealNode, startRealNode } from './node.ts';

export const NODE_NAME = 'real-node-0';

export interface NodeStack {
  readonly cluster: LocalCluster;
  readonly node: RealNode;
  readonly installed: Installed;
  /** The node's fake GPUs (driver files for the agent, CDI spec for containerd). */
  readonly gpus: FakeGpus;
  /** The image fraction pods run: it prints what its container sees of GPUs (gpu-reporter/reporter.c). */
  readonly reporterImage: string;
  /** Seconds per phase, in order. */
  readonly timings: [string, number][];
  client(user: string): KubeConfig;
  kubectl(args: readonly string[], input?: string): string;
  /** Tessera's pods in tessera-system. */
  tesseraPods(): Promise<V1Pod[]>;
  stop(): Promise<void>;
}

export async function startNodeStack(progress: (line: string) => void): Promise<NodeStack> {
  const timings: [string, number][] = [];
  const phase = async <T>(name: string, f: () => T | Promise<T>): Promise<T> => {
    const started = Date.now();
    progress(`${name}...`);
    const v = await f();
    const s = (Date.now() - started) / 1000;
    timings.push([name, s]);
    progress(`${name}: ${s.toFixed(1)} s`);
    return v;
  };
  const changes = new HostChanges(progress);
  let cluster: LocalCluster | null = null;
  let node: RealNode | null = null;
  let stopped = false;
  const onExit = (): void => {
    changes.undoAll();
  };
  process.once('exit', onExit);
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const started = Date.now();
    if (cluster && node) await drain(cluster, node.name).catch((e) => progress(`drain: ${(e as Error).message}`));
    if (node) await node.stop();
    changes.undoAll();
    if (cluster) await cluster.stop();
    process.removeListener('exit', onExit);
    timings.push(['teardown', (Date.now() - started) / 1000]);
    progress(`teardown: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  };
  if (process.getuid?.() !== 0)
    throw new Error(
      'the real-node test runs a kubelet, containerd and kube-proxy: it needs root (sudo npm run test:node)',
    );
  try {
    // A run killed without teardown (SIGKILL): its processes first (cluster.ts's registry), then its changes.
    reapOrphans();
    reapStaleNodes(progress);
    await phase('packages (apt-get when a command is missing)', () => ensurePackages(progress));
    const binaries = await phase('kubelet and kube-proxy', () => ensureNodeBinaries(progress));
    const containerd = await phase(`containerd ${CONTAINERD_VERSION}`, () => ensureContainerd(progress));
    const images = await phase('images: pause, kube-scheduler, tessera, gpu-reporter', () => ({
      pause: ensurePauseImage(progress),
      scheduler: ensureSchedulerImage(progress),
      tessera: ensureTesseraImage(progress),
      reporter: ensureGpuReporterImage(progress),
    }));
    const host = await phase('host: bridge, routes, sysctls', () => prepareHost(changes));
    const gpus = await phase('fake GPUs: driver files, device nodes, CDI spec', () =>
      createFakeGpus(host.dir, changes),
    );
    cluster = await phase('control plane and KWOK', () =>
      startCluster({ ...clusterOptionsForNode(NODE_NAME, host.tls), log: progress }),
    );
    const c = cluster;
    node = await phase('real node: containerd, kubelet, kube-proxy, DNS; node Ready', () =>
      startRealNode({
        name: NODE_NAME,
        dir: host.dir,
        cluster: c,
        binaries,
        containerd,
        changes,
        pause: images.pause,
        log: progress,
      }),
    );
    const n = node;
    await phase('images imported into containerd', () => {
      n.importImage(images.scheduler);
      n.importImage(images.tessera);
      n.importImage(images.reporter);
    });
    const how = installMethod();
    const installed = await phase(
      how === 'helm'
        ? 'Tessera installed (helm install charts/tessera, certificates by its hook Job)'
        : 'Tessera installed (kubectl apply -k manifests/overlays/local-image)',
      () => (how === 'helm' ? installWithHelm(c, images.tessera.ref) : installTessera(c, host.dir, images.tessera.ref)),
    );
    const admin = new KubeConfig();
    admin.loadFromString(c.kubeconfigText('admin'));
    const core = admin.makeApiClient(CoreV1Api);
    const tesseraPods = async (): Promise<V1Pod[]> =>
      (await core.listNamespacedPod({ namespace: 'tessera-system' })).items;
    await phase('Tessera pods Ready (both webhooks, both extenders, both tessera-schedulers)', () =>
      waitTesseraReady(tesseraPods, n),
    );
    return {
      cluster: c,
      node: n,
      installed,
      gpus,
      reporterImage: images.reporter.ref,
      timings,
      client(user) {
        const kc = new KubeConfig();
        kc.loadFromString(c.kubeconfigText(user));
        return kc;
      },
      kubectl: kubectlFor(c),
      tesseraPods,
      stop,
    };
  } catch (e) {
    if (node) {
      progress(`kubelet log:\n${node.logTail('kubelet', 30)}`);
      progress(`containerd log:\n${node.logTail('containerd', 15)}`);
    }
    await stop();
    throw e;
  }
}

function ready(p: V1Pod): boolean {
  return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

const app = (p: V1Pod): string => p.metadata?.labels?.['app.kubernetes.io/name'] ?? '';

/** The webhook, the extender (leader and standby) and tessera-scheduler have two Ready pods each. */
async function waitTesseraReady(pods: () => Promise<V1Pod[]>, node: RealNode, timeoutMs = 240_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await pods();
    const count = (name: string) => list.filter((p) => app(p) === name && ready(p)).length;
    if (count('tessera-webhook') >= 2 && count('tessera-extender') >= 2 && count('tessera-scheduler') >= 2) return;
    if (Date.now() > deadline) {
      const state = list
        .map(
          (p) =>
            `${p.metadata?.name} ${p.status?.phase} node=${p.spec?.nodeName ?? '-'} ready=${ready(p)} ${JSON.stringify(
              p.status?.containerStatuses?.map((s) => s.state),
            )} ${JSON.stringify(p.status?.conditions?.filter((c) => c.status !== 'True'))}`,
        )
        .join('\n');
      const logs = list
        .map((p) => `${p.metadata?.name}:\n${node.podLogs('tessera-system', p.metadata!.name!)}`)
        .join('\n');
      throw new Error(
        `Tessera's pods not Ready after ${timeoutMs / 1000} s:\n${state}\n${logs}\nkubelet:\n${node.logTail('kubelet', 40)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Before the kubelet stops: Tessera's Deployments scaled to zero and every pod on the node deleted, then waited for
 * until the kubelet has stopped them (sandboxes, CNI teardown, volumes), so that it leaves nothing behind. */
async function drain(cluster: LocalCluster, nodeName: string, timeoutMs = 60_000): Promise<void> {
  const kubectl = kubectlFor(cluster);
  kubectl(['cordon', nodeName]);
  kubectl(['-n', 'tessera-system', 'scale', 'deployment', '--all', '--replicas=0']);
  kubectl(['delete', 'pods', '--all-namespaces', '--field-selector', `spec.nodeName=${nodeName}`, '--wait=false']);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const left = kubectl([
      'get',
      'pods',
      '--all-namespaces',
      '--field-selector',
      `spec.nodeName=${nodeName}`,
      '-o',
      'name',
    ]).trim();
    if (left === '') return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error('pods still on the node after 60 s');
}
