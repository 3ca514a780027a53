// One real Kubernetes node on this machine, beside the local control plane (test/controlplane/cluster.ts): containerd 2
// (built from the pinned module, containerd.ts) with Debian's runc, the CNI bridge and host-local plugins (Debian's containernetworking-plugins), the kubelet and
// kube-proxy (iptables mode) built from the pinned k8s.io/kubernetes, and a small cluster DNS (dns.ts). Everything it
// writes lives in one temporary folder, and every change to the machine is undone by stop(): processes, containers and
// their cgroups, mounts (the kubelet's root dir, containerd's snapshots and netns), the bridge and routes, kube-proxy's
// iptables rules (`kube-proxy --cleanup`) and the sysctls the kubelet and kube-proxy set.
//
// cgroup v1 (what this machine has): the kubelet refuses it since 1.35 unless its KubeletConfiguration says
// `failCgroupV1: false` (pkg/kubelet/apis/config/validation/validation_linux.go); the cgroup driver is cgroupfs on both
// sides (kubelet `cgroupDriver: cgroupfs`, containerd's runc `SystemdCgroup = false`; there is no systemd here).
// containerd 2 answers the CRI RuntimeConfig call from its default runtime's SystemdCgroup
// (internal/cri/server/runtime_config_linux.go), so the kubelet takes cgroupfs from it (cmd/kubelet/app/server.go,
// getCgroupDriverFromCRI), as it must from 1.38 on.

import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig, type V1Node } from '@kubernetes/client-node';
import { createCa, issueLeaf } from '../../certs/authority.ts';
import { freePort, type LocalCluster, startProcess, stopProcess } from '../controlplane/cluster.ts';
import type { LocalImage, NodeBinaries } from './build.ts';
import { AGENT_GROUPS, AGENT_USER, DEVICE_PLUGIN_DIR } from './agent-process.ts';
import type { ContainerdBinaries } from './containerd.ts';
import { CDI_SPEC_DIR } from './fake-gpus.ts';
import { type ClusterDns, startClusterDns } from './dns.ts';
import {
  cgroupHierarchies,
  type HostChanges,
  mountsUnder,
  removeCgroupTree,
  removeKubeChains,
  sh,
  unmountUnder,
} from './host.ts';

/** The node's networks. The service range is the control plane's (`--service-cluster-ip-range` in cluster.ts). */
export const NETWORK = {
  bridge: 'tessera0',
  podCidr: '10.77.0.0/24',
  gateway: '10.77.0.1',
  serviceCidr: '10.96.0.0/16',
  apiServiceIp: '10.96.0.1',
  clusterDomain: 'cluster.local',
} as const;

/** Sysctls the kubelet (setupKernelTunables) and kube-proxy may change: put back at teardown. */
const KEPT_SYSCTLS = [
  'vm.overcommit_memory',
  'vm.panic_on_oom',
  'kernel.panic',
  'kernel.panic_on_oops',
  'kernel.keys.root_maxkeys',
  'kernel.keys.root_maxbytes',
  'net.ipv4.conf.all.route_localnet',
  'net.netfilter.nf_conntrack_max',
  'net.netfilter.nf_conntrack_tcp_timeout_established',
  'net.netfilter.nf_conntrack_tcp_timeout_close_wait',
  'net.netfilter.nf_conntrack_tcp_be_liberal',
];

export interface ApiserverTls {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * The machine side, before the control plane starts: a folder, the bridge with the gateway address (the API server
 * advertises it, so pods reach it through the `kubernetes` Service), a route that keeps the Service range on the
 * bridge (never out of the machine's uplink), IP forwarding, and the API server's serving certificate for the names
 * and addresses pods use.
 */
export function prepareHost(changes: HostChanges): { dir: string; tls: ApiserverTls } {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-node-'));
  changes.add(`remove ${dir}`, () => {
    if (process.env.TESSERA_KEEP_CLUSTER_DIR) changes.log(`kept ${dir} (TESSERA_KEEP_CLUSTER_DIR)`);
    else if (mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
    else changes.log(`teardown: ${dir} kept, mounts remain: ${mountsUnder(dir).join(' ')}`);
  });
  changes.keepSysctls(KEPT_SYSCTLS);
  changes.sysctl('net.ipv4.ip_forward', '1');
  if (existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables'))
    changes.sysctl('net.bridge.bridge-nf-call-iptables', '1');
  if (sh('ip', ['-o', 'link', 'show']).includes(` ${NETWORK.bridge}:`))
    throw new Error(`a link ${NETWORK.bridge} exists already: another real-node run is going on, or one left it`);
  changes.note({ dir, bridge: NETWORK.bridge, route: NETWORK.serviceCidr });
  sh('ip', ['link', 'add', NETWORK.bridge, 'type', 'bridge']);
  changes.add(`ip link del ${NETWORK.bridge}`, () => sh('ip', ['link', 'del', NETWORK.bridge]));
  sh('ip', ['addr', 'add', `${NETWORK.gateway}/24`, 'dev', NETWORK.bridge]);
  sh('ip', ['link', 'set', NETWORK.bridge, 'up']);
  sh('ip', ['route', 'add', NETWORK.serviceCidr, 'dev', NETWORK.bridge, 'src', NETWORK.gateway]);
  changes.add(`ip route del ${NETWORK.serviceCidr}`, () => {
    try {
      sh('ip', ['route', 'del', NETWORK.serviceCidr]);
    } catch {
      // went with the bridge
    }
  });

  const ca = createCa({ commonName: 'tessera-real-node-apiserver-ca' });
  const leaf = issueLeaf(ca, {
    commonName: 'kube-apiserver',
    dnsNames: [
      'kubernetes',
      'kubernetes.default',
      'kubernetes.default.svc',
      'kubernetes.default.svc.cluster.local',
      'localhost',
    ],
    ips: ['127.0.0.1', NETWORK.gateway, NETWORK.apiServiceIp],
  });
  const tls = {
    caFile: join(dir, 'apiserver-ca.crt'),
    certFile: join(dir, 'apiserver.crt'),
    keyFile: join(dir, 'apiserver.key'),
  };
  writeFileSync(tls.caFile, ca.certPem);
  writeFileSync(tls.certFile, leaf.certPem);
  writeFileSync(tls.keyFile, leaf.keyPem, { mode: 0o600 });
  return { dir, tls };
}

/** kube-controller-manager's controllers a real node's workloads need (Deployments, Services' EndpointSlices, the
 * service account and kube-root-ca.crt of each namespace) besides the e2e suite's. */
export const NODE_CONTROLLERS: readonly string[] = [
  'job-controller',
  'node-lifecycle-controller',
  'deployment-controller',
  'replicaset-controller',
  'endpointslice-controller',
  'serviceaccount-controller',
  'root-ca-certificate-publisher-controller',
  'garbage-collector-controller',
  'pod-garbage-collector-controller',
  'disruption-controller',
  // The node agent's DaemonSet: without its controller the DaemonSet never reports an observed generation, and
  // `helm install --wait` waits for it until its timeout.
  'daemonset-controller',
];

/** startCluster's options for a control plane that a real node joins. */
export function clusterOptionsForNode(nodeName: string, tls: ApiserverTls) {
  return {
    apiserverFlags: [
      // Pods reach the API server through the `kubernetes` Service: its endpoint is the gateway address.
      '--bind-address',
      '0.0.0.0',
      '--advertise-address',
      NETWORK.gateway,
      '--endpoint-reconciler-type',
      'lease',
      '--tls-cert-file',
      tls.certFile,
      '--tls-private-key-file',
      tls.keyFile,
    ],
    controllerManager: NODE_CONTROLLERS,
    controllerManagerFlags: ['--root-ca-file', tls.caFile, '--concurrent-gc-syncs', '5'],
    identities: [
      { user: `system:node:${nodeName}`, groups: ['system:nodes'] },
      { user: 'system:kube-proxy', groups: [] },
      // Tessera's node agent, run on the host from this checkout (agent-process.ts), under its service account's name.
      { user: AGENT_USER, groups: AGENT_GROUPS },
    ],
    scheduler: true,
    kwok: true,
  };
}

export interface RealNode {
  readonly name: string;
  readonly dir: string;
  readonly podLogsDir: string;
  readonly dns: ClusterDns;
  /** The kubelet's --root-dir (its device plugin sockets are under device-plugins/). */
  readonly kubeletRoot: string;
  /** Stops the kubelet (SIGTERM, as a service manager does) and starts it again with the same flags; resolves once
   * it is healthy. Containers keep running. */
  restartKubelet(): Promise<void>;
  /** The kubelet's /metrics (Prometheus text), read with the admin's token (the kubelet's webhook authn/authz). */
  kubeletMetrics(): Promise<string>;
  /** `ctr` against this node's containerd, in the k8s.io namespace. */
  ctr(args: readonly string[]): string;
  importImage(image: LocalImage): void;
  /** The last lines of a component's log: containerd, kubelet, kube-proxy. */
  logTail(component: 'containerd' | 'kubelet' | 'kube-proxy', lines?: number): string;
  /** The containers' logs of a pod (from the kubelet's pod log folder). */
  podLogs(namespace: string, pod: string): string;
  /** Stops kube-proxy, the kubelet, containerd and every container, and undoes the node's changes (drain the node
   * first for a clean stop of its pods). The control plane is the caller's. */
  stop(): Promise<void>;
}

/** GET from the kubelet's HTTPS port (its serving certificate is self-signed) with a bearer token. */
function kubeletGet(url: string, token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { headers: { authorization: `Bearer ${token}` }, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode} ${body}`)),
      );
    });
    req.on('error', reject);
  });
}

function tailFile(file: string, lines: number): string {
  try {
    return sh('tail', ['-n', String(lines), file]);
  } catch {
    return '(no log)';
  }
}

async function until(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  child?: ChildProcess,
  log?: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null)
      throw new Error(`${what}: the process exited ${child.exitCode}\n${log ? tailFile(log, 30) : ''}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}\n${log ? tailFile(log, 30) : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export interface RealNodeOptions {
  readonly name: string;
  readonly dir: string;
  readonly cluster: LocalCluster;
  readonly binaries: NodeBinaries;
  readonly changes: HostChanges;
  /** containerd, ctr and the runc shim (containerd.ts). */
  readonly containerd: ContainerdBinaries;
  /** The pod sandbox image, imported before the kubelet starts. */
  readonly pause: LocalImage;
  readonly log?: (line: string) => void;
}

export async function startRealNode(o: RealNodeOptions): Promise<RealNode> {
  const { dir, changes, cluster } = o;
  const log = o.log ?? (() => {});
  const sock = join(dir, 'containerd', 'containerd.sock');
  const kubeletRoot = join(dir, 'kubelet');
  const podLogsDir = join(dir, 'pod-logs');
  const cniConf = join(dir, 'cni');
  const cgroupRoot = `tessera-node-${process.pid}`;
  for (const d of [join(dir, 'containerd'), kubeletRoot, podLogsDir, cniConf]) mkdirSync(d, { recursive: true });
  const admin = new KubeConfig();
  admin.loadFromString(cluster.kubeconfigText('admin'));
  const core = admin.makeApiClient(CoreV1Api);

  // The kubelet makes its device plugin folder at a fixed path, whatever its --root-dir (and its pki/ beside it):
  // removed at teardown when this run made it (the folder, or /var/lib/kubelet itself).
  for (const d of ['/var/lib/kubelet', DEVICE_PLUGIN_DIR])
    if (!existsSync(d)) {
      changes.add(`remove ${d}`, () => rmSync(d, { recursive: true, force: true }));
      break;
    }
  // containerd 2's CNI library caches results in /var/lib/cni/results (libcni's default cache dir): removed likewise.
  if (!existsSync('/var/lib/cni'))
    changes.add('remove /var/lib/cni', () => rmSync('/var/lib/cni', { recursive: true, force: true }));
  // The pods' cgroups: one folder per hierarchy, the kubelet's cgroupRoot (it must exist before the kubelet starts).
  changes.note({ cgroupRoot, containerdSocket: sock });
  const hierarchies = cgroupHierarchies();
  for (const h of hierarchies) {
    mkdirSync(join(h, cgroupRoot), { recursive: true });
    changes.add(`cgroup ${h}/${cgroupRoot}`, () => removeCgroupTree(join(h, cgroupRoot)));
  }
  // Mounts under the folder (kubelet root dir made rshared, snapshots, sandboxes' shm and netns): all undone.
  changes.add(`unmount under ${dir}`, () => unmountUnder(dir));

  // CNI: a bridge with host-local addresses; no masquerade (nothing leaves the machine), hairpin for a pod calling a
  // Service it backs.
  writeFileSync(
    join(cniConf, '10-tessera.conflist'),
    JSON.stringify(
      {
        cniVersion: '1.0.0',
        name: 'tessera-node',
        plugins: [
          {
            type: 'bridge',
            bridge: NETWORK.bridge,
            isGateway: true,
            ipMasq: false,
            hairpinMode: true,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: NETWORK.podCidr, gateway: NETWORK.gateway }]],
              routes: [{ dst: '0.0.0.0/0' }],
              dataDir: join(dir, 'cni-ipam'),
            },
          },
          { type: 'loopback' },
        ],
      },
      null,
      2,
    ),
  );

  // containerd 2 (built from the pinned module, containerd.ts), config version 3, all state in the folder. Keys and
  // defaults: github.com/containerd/containerd/v2@v2.4.2 docs/cri/config.md and internal/cri/config/config{,_unix}.go.
  // CDI is always on in 2.x (plugins/cri/runtime/plugin.go skips the old `enable_cdi`); its spec directories are
  // named anyway, as the default (/etc/cdi, /var/run/cdi), since the fake GPUs' spec is written there.
  const containerdState = join(dir, 'containerd', 'state');
  writeFileSync(
    join(dir, 'containerd', 'config.toml'),
    [
      'version = 3',
      `root = "${join(dir, 'containerd', 'root')}"`,
      `state = "${containerdState}"`,
      'disabled_plugins = ["io.containerd.internal.v1.tracing"]',
      '[grpc]',
      `  address = "${sock}"`,
      '[debug]',
      '  level = "info"',
      // NRI (on by default in 2.x) would listen on /var/run/nri/nri.sock, outside the folder; nothing here uses it.
      "[plugins.'io.containerd.nri.v1.nri']",
      '  disable = true',
      "[plugins.'io.containerd.cri.v1.images']",
      '  snapshotter = "overlayfs"',
      "  [plugins.'io.containerd.cri.v1.images'.pinned_images]",
      `    sandbox = "${o.pause.ref}"`,
      "[plugins.'io.containerd.cri.v1.runtime']",
      '  netns_mounts_under_state_dir = true',
      '  enable_selinux = false',
      // This machine's root has no CAP_SYS_RESOURCE (a sandbox limit): runc cannot lower oom_score_adj, and the
      // kubelet asks -998 for every pod sandbox. Clamp to containerd's own (0), as for rootless containerd.
      '  restrict_oom_score_adj = true',
      `  cdi_spec_dirs = ["/etc/cdi", "${CDI_SPEC_DIR}"]`,
      "  [plugins.'io.containerd.cri.v1.runtime'.containerd]",
      '    default_runtime_name = "runc"',
      "    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]",
      '      runtime_type = "io.containerd.runc.v2"',
      // The shim built with this containerd, not a containerd-shim-runc-v2 that PATH may hold (the shim manager
      // tries PATH before containerd's own folder: core/runtime/v2/shim_manager.go).
      `      runtime_path = "${o.containerd.shim}"`,
      "      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]",
      '        SystemdCgroup = false',
      `        Root = "${join(dir, 'containerd', 'runc')}"`,
      // A runc wrapper for debugging (TESSERA_NODE_RUNC=/path/to/script); Debian's runc otherwise.
      ...(process.env.TESSERA_NODE_RUNC ? [`        BinaryName = "${process.env.TESSERA_NODE_RUNC}"`] : []),
      "  [plugins.'io.containerd.cri.v1.runtime'.cni]",
      '    bin_dirs = ["/usr/lib/cni"]',
      `    conf_dir = "${cniConf}"`,
      '    max_conf_num = 1',
      "[plugins.'io.containerd.internal.v1.opt']",
      `  path = "${join(dir, 'containerd', 'opt')}"`,
      '',
    ].join('\n'),
  );
  // containerd keeps shim sockets under /run/containerd/s whatever its state dir (core/runtime/v2/shim_unix.go):
  // removed if this run made it.
  if (!existsSync('/run/containerd')) {
    changes.note({ runContainerd: true });
    changes.add('/run/containerd', () => rmSync('/run/containerd', { recursive: true, force: true }));
  }
  const ctr = (args: readonly string[]): string =>
    sh(o.containerd.ctr, ['--address', sock, '--namespace', 'k8s.io', ...args]);
  const containerd = startProcess(
    'containerd',
    o.containerd.containerd,
    ['--config', join(dir, 'containerd', 'config.toml')],
    dir,
  );
  // Whatever happens after, containers go first: kill their tasks while containerd answers, then the shims of this
  // containerd (their command line names its socket), then any process left in the pods' cgroups.
  changes.add('containerd and its containers', () => {
    try {
      for (const id of ctr(['tasks', 'ls', '-q']).split('\n').filter(Boolean)) {
        try {
          ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
        } catch {
          // already stopped
        }
      }
    } catch {
      // containerd is not answering
    }
    if (containerd.pid !== undefined)
      try {
        process.kill(-containerd.pid, 'SIGKILL');
      } catch {
        // gone
      }
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const cmdline = sh('cat', [`/proc/${pid}/cmdline`]).split('\0');
        if (cmdline[0]?.endsWith('containerd-shim-runc-v2') && cmdline.includes(sock))
          process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const h of hierarchies) removeCgroupTree(join(h, cgroupRoot));
  });
  await until(
    'containerd',
    async () => ctr(['version']).includes('Server'),
    60_000,
    containerd,
    join(dir, 'containerd.log'),
  );
  const importImage = (image: LocalImage): void => {
    // --local: the client-side import, as ctr 1.6 did. Through containerd 2's transfer service, an --index-name equal to
    // the archive's own name is deleted again when the import's temporary image goes (seen here: ImageCreate, then
    // ImageDelete of the same name 0.2 s later), and the kubelet then tries to pull the sandbox image.
    ctr(['images', 'import', '--local', '--no-unpack', '--index-name', image.ref, image.archive]);
    if (!ctr(['images', 'ls', '-q']).split('\n').includes(image.ref))
      throw new Error(
        `${image.archive} imported, but ${image.ref} is not among containerd's images:\n${ctr(['images', 'ls', '-q'])}`,
      );
  };
  importImage(o.pause);

  // The kubelet.
  const [kubeletPort, kubeletHealthz] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'resolv.conf'), '');
  const kubeletConfig = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // cgroup v1 is refused since 1.35 unless said so.
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: `/${cgroupRoot}`,
    cgroupsPerQOS: true,
    enforceNodeAllocatable: ['pods'],
    containerRuntimeEndpoint: `unix://${sock}`,
    address: NETWORK.gateway,
    port: kubeletPort,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: kubeletHealthz,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true } },
    authorization: { mode: 'Webhook' },
    clusterDNS: [NETWORK.gateway],
    clusterDomain: NETWORK.clusterDomain,
    resolvConf: join(dir, 'resolv.conf'),
    podLogsDir,
    failSwapOn: false,
    // No CAP_SYS_RESOURCE here: the kubelet could not lower its own oom_score_adj (-999 by default).
    oomScoreAdj: 0,
    maxPods: 30,
    serializeImagePulls: false,
    // The machine's disk is shared: never evict or collect images for disk pressure caused by others.
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    rotateCertificates: false,
    serverTLSBootstrap: false,
    registerNode: true,
    nodeStatusUpdateFrequency: '5s',
    // Pods' Secret volumes follow their Secret at each pod sync: every 10 s rather than every minute, for the
    // certificate rotation check.
    syncFrequency: '10s',
  };
  writeFileSync(join(dir, 'kubelet.yaml'), JSON.stringify(kubeletConfig, null, 2));
  // The kubelet's iptables chains (KUBE-FIREWALL, its canaries), taken out once it is stopped (undone after it).
  changes.add('KUBE-* iptables chains', () => void removeKubeChains());
  const kubeletArgs = [
    '--config',
    join(dir, 'kubelet.yaml'),
    '--kubeconfig',
    cluster.kubeconfigFor(`system:node:${o.name}`),
    '--root-dir',
    kubeletRoot,
    '--hostname-override',
    o.name,
    '--node-ip',
    NETWORK.gateway,
    '--v',
    '2',
  ];
  let kubelet = startProcess('kubelet', o.binaries.kubelet, kubeletArgs, dir);
  changes.add('kubelet', () => {
    if (kubelet.pid !== undefined && kubelet.exitCode === null)
      try {
        process.kill(-kubelet.pid, 'SIGKILL');
      } catch {
        // gone
      }
  });
  const kubeletHealthy = (timeoutMs: number) =>
    until(
      'the kubelet /healthz',
      async () => (await fetch(`http://127.0.0.1:${kubeletHealthz}/healthz`)).ok,
      timeoutMs,
      kubelet,
      join(dir, 'kubelet.log'),
    );
  await kubeletHealthy(120_000);

  // kube-proxy, iptables mode, for the pod range on the bridge.
  const [proxyHealthz, proxyMetrics] = [await freePort(), await freePort()];
  writeFileSync(
    join(dir, 'kube-proxy.yaml'),
    JSON.stringify(
      {
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        mode: 'iptables',
        clientConnection: { kubeconfig: cluster.kubeconfigFor('system:kube-proxy') },
        hostnameOverride: o.name,
        clusterCIDR: NETWORK.podCidr,
        healthzBindAddress: `127.0.0.1:${proxyHealthz}`,
        metricsBindAddress: `127.0.0.1:${proxyMetrics}`,
        // Leave the machine's conntrack settings and route_localnet alone.
        conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
        iptables: { localhostNodePorts: false, masqueradeAll: false },
        nodePortAddresses: [`${NETWORK.gateway}/32`],
        oomScoreAdj: 0,
      },
      null,
      2,
    ),
  );
  // Before it starts: its rules are taken out at teardown, whatever happens.
  changes.add('kube-proxy --cleanup', () => {
    sh(o.binaries.kubeProxy, ['--cleanup', '--config', join(dir, 'kube-proxy.yaml')]);
  });
  const kubeProxy = startProcess(
    'kube-proxy',
    o.binaries.kubeProxy,
    ['--config', join(dir, 'kube-proxy.yaml'), '--v', '2'],
    dir,
  );
  changes.add('kube-proxy', () => {
    if (kubeProxy.pid !== undefined && kubeProxy.exitCode === null)
      try {
        process.kill(-kubeProxy.pid, 'SIGKILL');
      } catch {
        // gone
      }
  });
  await until(
    'kube-proxy /healthz',
    async () => (await fetch(`http://127.0.0.1:${proxyHealthz}/healthz`)).ok,
    60_000,
    kubeProxy,
    join(dir, 'kube-proxy.log'),
  );

  const dns = await startClusterDns(admin, NETWORK.gateway, NETWORK.clusterDomain);
  changes.add('cluster DNS', () => void dns.close());

  log('waiting for the node to be Ready');
  await until(
    `node ${o.name} Ready`,
    async () => {
      const n: V1Node = await core.readNode({ name: o.name });
      return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    },
    120_000,
    kubelet,
    join(dir, 'kubelet.log'),
  );

  const restartKubelet = async (): Promise<void> => {
    await stopProcess(kubelet);
    kubelet = startProcess('kubelet', o.binaries.kubelet, kubeletArgs, dir);
    await kubeletHealthy(120_000);
  };
  const stop = async (): Promise<void> => {
    await stopProcess(kubeProxy).catch(() => {});
    await stopProcess(kubelet).catch(() => {});
    changes.undoAll();
  };
  return {
    name: o.name,
    dir,
    podLogsDir,
    kubeletRoot,
    dns,
    ctr,
    restartKubelet,
    kubeletMetrics: () => kubeletGet(`https://${NETWORK.gateway}:${kubeletPort}/metrics`, cluster.admin.token),
    importImage,
    logTail: (component, lines = 40) => tailFile(join(dir, `${component}.log`), lines),
    podLogs(namespace, pod) {
      const folder = readdirSync(podLogsDir).find((d) => d.startsWith(`${namespace}_${pod}_`));
      if (!folder) return '(no logs)';
      const out: string[] = [];
      for (const container of readdirSync(join(podLogsDir, folder)))
        for (const file of readdirSync(join(podLogsDir, folder, container)))
          out.push(`== ${container}/${file}\n${tailFile(join(podLogsDir, folder, container, file), 40)}`);
      return out.join('\n');
    },
    stop,
  };
}
