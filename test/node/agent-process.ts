// Tessera's node agent on the real node, run as a process on the host from this checkout's sources
// (`tessera serve node-agent`, the command the DaemonSet runs), pointed at this node's kubelet (its --root-dir is the
// test's folder, so the device plugin and PodResources sockets are there), the fake GPUs' driver root and the CDI
// directory. Why not the chart's DaemonSet: its hostPaths are fixed (/var/lib/kubelet/..., /proc/driver/nvidia), and
// no fake driver tree can be put under /proc. It runs as the DaemonSet's ServiceAccount (a token identity of that
// name), so the chart's own RBAC is all it has. Restarting it is a SIGTERM and a new process, as a DaemonSet pod
// restart is for the kubelet.

import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { type LocalCluster, freePort, startProcess, stopProcess } from '../controlplane/cluster.ts';
import { until } from '../fixtures/waiting.ts';
import { CDI_KIND, CDI_SPEC_DIR, type FakeGpus } from './fake-gpus.ts';
import type { RealNode } from './node.ts';
import { sh } from './host.ts';

/** The agent's ServiceAccount (the chart's, namespace tessera-node-agent) as a token identity: the chart's own
 * ClusterRoleBinding applies to it, so the host process has exactly the DaemonSet's rights. */
export const AGENT_NAMESPACE = 'tessera-node-agent';
export const AGENT_USER = `system:serviceaccount:${AGENT_NAMESPACE}:tessera-node-agent`;
export const AGENT_GROUPS = ['system:serviceaccounts', `system:serviceaccounts:${AGENT_NAMESPACE}`];

const REPO = join(import.meta.dirname, '..', '..');

/** Where the kubelet serves device plugins (fixed; node.ts removes it at teardown when the run made it). */
export const DEVICE_PLUGIN_DIR = '/var/lib/kubelet/device-plugins';

export type AgentDelivery = 'auto' | 'cdi-cri' | 'envvar' | 'volume-mounts';

export interface NodeAgent {
  readonly url: string;
  readonly delivery: AgentDelivery;
  /** SIGTERM, then a new process with the same flags (or another delivery); resolves once it is ready again. */
  restart(delivery?: AgentDelivery): Promise<void>;
  /** The agent's /metrics text. */
  metrics(): Promise<string>;
  /** The agent's log (pino JSON lines). */
  logFile: string;
  stop(): Promise<void>;
}

export async function startNodeAgent(o: {
  cluster: LocalCluster;
  node: RealNode;
  gpus: FakeGpus;
  delivery: AgentDelivery;
  log?: (line: string) => void;
}): Promise<NodeAgent> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let delivery = o.delivery;
  const args = (): string[] => [
    join(REPO, 'cli', 'tessera.ts'),
    'serve',
    'node-agent',
    '--node-name',
    o.node.name,
    '--driver-root',
    o.gpus.driverRoot,
    // The kubelet serves device plugins at a fixed path, whatever its --root-dir (k8s.io/kubelet
    // pkg/apis/deviceplugin/v1beta1/constants.go DevicePluginPath); PodResources is under the root dir.
    '--device-plugin-dir',
    DEVICE_PLUGIN_DIR,
    '--pod-resources-socket',
    join(o.node.kubeletRoot, 'pod-resources', 'kubelet.sock'),
    '--delivery',
    delivery,
    '--cdi-kind',
    CDI_KIND,
    '--cdi-dir',
    CDI_SPEC_DIR,
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--kubeconfig',
    o.cluster.kubeconfigFor(AGENT_USER),
  ];
  const logFile = join(o.node.dir, 'node-agent.log');
  let child: ChildProcess;
  const ready = async (): Promise<void> => {
    await until(
      `the node agent ready (${url}/readyz)`,
      async () => {
        if (child.exitCode !== null) throw new Error(`the node agent exited ${child.exitCode}: ${tail(logFile)}`);
        return (await fetch(`${url}/readyz`)).ok;
      },
      120_000,
      250,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${tail(logFile)}`);
    });
  };
  const start = async (): Promise<void> => {
    child = startProcess('node-agent', process.execPath, args(), o.node.dir);
    // An agent that never became ready is stopped: nothing else holds it, and it would keep the test process alive.
    await ready().catch(async (e: Error) => {
      await stopProcess(child);
      throw e;
    });
  };
  await start();
  return {
    url,
    get delivery() {
      return delivery;
    },
    logFile,
    async restart(next) {
      await stopProcess(child);
      if (next) delivery = next;
      await start();
    },
    async metrics() {
      return (await fetch(`${url}/metrics`)).text();
    },
    async stop() {
      await stopProcess(child);
    },
  };
}

function tail(file: string): string {
  try {
    return sh('tail', ['-n', '30', file]);
  } catch {
    return '(no log)';
  }
}

/** Bucket upper bounds and counts of a Prometheus histogram, summed over label sets matching `filter`. */
export function histogram(text: string, name: string, filter: (labels: string) => boolean = () => true) {
  const buckets = new Map<number, number>();
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}_bucket\\{(.*)\\} (\\S+)$`).exec(line);
    if (!m || !filter(m[1]!)) continue;
    const le = /le="([^"]+)"/.exec(m[1]!)?.[1];
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(m[2]));
  }
  return [...buckets.entries()].sort((a, b) => a[0] - b[0]);
}

/** The smallest bucket bound under which at least p % of the observations fall (an upper bound of the percentile). */
export function histogramPercentile(buckets: readonly [number, number][], p: number): number {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return Number.NaN;
  return buckets.find(([, count]) => count >= (p / 100) * total)?.[0] ?? Number.POSITIVE_INFINITY;
}
