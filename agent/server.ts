// `tessera serve node-agent`: the kubelet device plugin for tessera.io/gpu-milli on one fraction node. It reads the
// node's GPUs from the driver, advertises 1000 device IDs per GPU with health, answers Allocate with the GPUs the
// extender assigned to the pod being started, re-registers when the kubelet restarts, and labels its node so that
// the extender stops advertising gpu-milli there (one writer) and so that pools can require enforcement.
// HTTP: /healthz (alive), /readyz (registered with the kubelet now running, pods listed), /metrics.
//
// Flags of `tessera serve node-agent` (cli/serve.ts; docs/node-agent.md has the full table):
//   --node-name NAME ($NODE_NAME)           the node served; required
//   --driver-root DIR (/)                   reads DIR/proc/driver/nvidia/gpus/*/information (a fake tree in tests)
//   --device-plugin-dir DIR                 /var/lib/kubelet/device-plugins: kubelet.sock, and our tessera-gpu-milli.sock
//   --pod-resources-socket FILE             /var/lib/kubelet/pod-resources/kubelet.sock
//   --delivery auto|cdi-cri|envvar|volume-mounts (auto)   wins over the pod's tessera.io/gpu-delivery (its pool's mode)
//   --cdi-kind KIND (nvidia.com/gpu)        CDI kind naming GPUs by UUID; --cdi-dir DIR... (/etc/cdi, /var/run/cdi)
//   --write-cdi-spec FILE, --dev-root DIR   write our own spec of kind --cdi-kind (device nodes only)
//   --toolkit-config FILE                   the NVIDIA toolkit's config.toml (auto picks volume-mounts from it)
//   --enforcement auto|hami-core|mps|none (auto), --hami-core-dir DIR, --mps-pipe-dir DIR
//   --scheduler-name NAME... (tessera-scheduler)   schedulers whose binds carry Tessera's assignment
//   --host, --port (9400), --health-interval S (5), --kubelet-check-interval S (1), --kubeconfig, --context, --log-level
// Node labels it sets: tessera.io/node-agent=serving, tessera.io/gpu-enforcement=<hami-core|mps|none>,
// tessera.io/gpu-delivery=<mode>.

import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import express from 'express';
import type { Logger } from 'pino';
import type { AnswerOptions } from '../core/node-agent/allocation-answer.ts';
import { cdiSpecFor } from '../core/node-agent/cdi-spec.ts';
import {
  chooseDelivery,
  DELIVERY_MODES,
  type DeliveryChoice,
  type DeliveryMode,
  type EnforcementKind,
} from '../core/node-agent/delivery.ts';
import { deviceIdsOf } from '../core/node-agent/device-ids.ts';
import { missingGpus, orderGpus, type NodeGpu } from '../core/node-agent/node-gpus.ts';
import { parseAssignment } from '../core/assignment.ts';
import type { KubePod } from '../core/kube-objects.ts';
import {
  ASSIGNMENT,
  GPU_DELIVERY_ANNOTATION,
  GPU_DELIVERY_LABEL,
  GPU_ENFORCEMENT_LABEL,
  GPU_MILLI,
  NODE_AGENT_LABEL,
  NODE_AGENT_SERVING,
} from '../core/well-known-names.ts';
import { serve } from '../server/serve.ts';
import { Allocator } from './allocator.ts';
import { type AgentCluster, kubernetesAgentCluster } from './cluster.ts';
import { readGpuTree } from './gpu-tree.ts';
import { KubeletPlugin } from './kubelet-plugin.ts';
import { HEALTHY, UNHEALTHY, type WireDevice } from './kubelet-protos.ts';
import { AgentMetrics } from './metrics.ts';
import { detectEnforcement, readDeliveryFacts } from './node-setup.ts';
import { PodResourcesClient } from './pod-resources.ts';

export interface AgentOptions {
  readonly nodeName: string;
  /** Prefix of /proc/driver/nvidia/gpus (and of /dev in the agent's own CDI spec). */
  readonly driverRoot: string;
  readonly devicePluginDir: string;
  readonly podResourcesSocket: string;
  readonly delivery: DeliveryMode | 'auto';
  readonly cdiKind: string;
  readonly cdiDirs: readonly string[];
  /** Where to write the agent's own CDI spec (kind cdiKind), or null to use a spec already on the node. */
  readonly writeCdiSpec: string | null;
  /** Host root of /dev for the agent's own CDI spec. */
  readonly devRoot: string;
  readonly toolkitConfig: string;
  readonly enforcement: EnforcementKind | 'auto';
  readonly hamiCoreDir: string;
  readonly mpsPipeDir: string;
  readonly schedulerNames: readonly string[];
  readonly host: string;
  readonly port: number;
  readonly healthIntervalMs: number;
  readonly kubeletCheckIntervalMs: number;
  readonly log: Logger;
  /** Either a kubeconfig (the real cluster) or a prepared cluster (tests). */
  readonly kubeconfig?: KubeConfig;
  readonly cluster?: AgentCluster;
}

export interface Agent {
  readonly url: string;
  readonly plugin: KubeletPlugin;
  readonly metrics: AgentMetrics;
  /** The mode and enforcement in force. */
  state(): { delivery: DeliveryChoice; enforcement: EnforcementKind; gpus: readonly NodeGpu[]; unhealthy: string[] };
  /** Re-reads the GPU tree now (the health loop does it every healthIntervalMs). */
  rescan(): void;
  close(): Promise<void>;
}

export async function startAgent(options: AgentOptions): Promise<Agent> {
  const log = options.log;
  const metrics = new AgentMetrics();
  const cluster = options.cluster ?? kubernetesAgentCluster(options.kubeconfig!, options.nodeName, log);

  // The GPUs are fixed at start, numbered in bus order; later readings only change their health.
  const first = readGpuTree(options.driverRoot);
  for (const p of first.problems) log.warn({ problem: p }, 'GPU tree');
  const gpus = orderGpus(first.found);
  if (gpus.length === 0) log.error({ driverRoot: options.driverRoot }, 'no GPU found; the agent advertises nothing');
  let unhealthy = new Set<string>();
  log.info({ gpus: gpus.map((g) => `${g.index}:${g.uuid}:/dev/nvidia${g.minor}`) }, 'GPUs found');

  if (options.writeCdiSpec) writeOwnCdiSpec(options.writeCdiSpec, options.cdiKind, gpus, options.devRoot, log);

  let delivery: DeliveryChoice = { mode: 'envvar', because: 'not decided yet' };
  let enforcement: { kind: EnforcementKind; because: string } = { kind: 'none', because: 'not decided yet' };
  const decide = () => {
    const facts = readDeliveryFacts(options.cdiDirs, options.toolkitConfig);
    for (const p of facts.problems) log.warn({ problem: p }, 'CDI specs');
    const next = chooseDelivery(
      options.delivery,
      null,
      facts,
      options.cdiKind,
      gpus.map((g) => g.uuid),
    );
    const nextEnforcement =
      options.enforcement === 'auto'
        ? detectEnforcement(options.hamiCoreDir, options.mpsPipeDir)
        : { kind: options.enforcement, because: 'set by --enforcement' };
    if (next.mode !== delivery.mode || nextEnforcement.kind !== enforcement.kind)
      log.info({ delivery: next, enforcement: nextEnforcement }, 'delivery and enforcement');
    delivery = next;
    enforcement = nextEnforcement;
  };

  const devices = (): WireDevice[] =>
    gpus.flatMap((g) => deviceIdsOf(g.uuid).map((ID) => ({ ID, health: unhealthy.has(g.uuid) ? UNHEALTHY : HEALTHY })));

  // The flag wins; then the pod's pool (the webhook's tessera.io/gpu-delivery annotation); then the node's default.
  const answerOptions = (pod: KubePod): AnswerOptions => ({
    mode:
      options.delivery !== 'auto'
        ? options.delivery
        : (deliveryModeOf(pod.metadata?.annotations?.[GPU_DELIVERY_ANNOTATION]) ?? delivery.mode),
    cdiKind: options.cdiKind,
    enforcement: enforcement.kind,
    paths: { hamiCoreDir: options.hamiCoreDir, mpsPipeDir: options.mpsPipeDir },
  });
  const allocator = new Allocator({
    nodeName: options.nodeName,
    cluster,
    podResources: new PodResourcesClient(options.podResourcesSocket),
    gpus: () => ({ gpus, unhealthy }),
    schedulerNames: options.schedulerNames,
    answerOptions,
    metrics,
    log,
  });
  const plugin = new KubeletPlugin({
    pluginDir: options.devicePluginDir,
    socketName: 'tessera-gpu-milli.sock',
    resourceName: GPU_MILLI,
    handlers: { devices, allocate: (r) => allocator.allocate(r), preferred: (r) => allocator.preferred(r) },
    log,
    checkIntervalMs: options.kubeletCheckIntervalMs,
  });
  const countGpus = () => {
    metrics.gpus.set({ health: 'healthy' }, gpus.length - unhealthy.size);
    metrics.gpus.set({ health: 'unhealthy' }, unhealthy.size);
  };
  countGpus();
  plugin.on('registered', () => {
    metrics.registered.set(1);
    metrics.registrations.inc();
  });
  plugin.on('unregistered', () => metrics.registered.set(0));

  const labelNode = async () => {
    try {
      await cluster.labelNode({
        [NODE_AGENT_LABEL]: NODE_AGENT_SERVING,
        [GPU_ENFORCEMENT_LABEL]: enforcement.kind,
        [GPU_DELIVERY_LABEL]: delivery.mode,
      });
    } catch (e) {
      log.error({ err: (e as Error).message }, 'could not label the node; the extender keeps writing its capacity');
    }
  };

  const rescan = () => {
    const reading = readGpuTree(options.driverRoot);
    const now = missingGpus(gpus, reading.found);
    const lost = gpus.filter((g) => now.has(g.uuid) && !unhealthy.has(g.uuid));
    const back = gpus.filter((g) => !now.has(g.uuid) && unhealthy.has(g.uuid));
    if (lost.length === 0 && back.length === 0) return;
    unhealthy = now;
    countGpus();
    plugin.devicesChanged();
    for (const g of back) log.info({ gpu: g.index, uuid: g.uuid }, 'GPU is back; its devices are Healthy');
    for (const g of lost) {
      log.error({ gpu: g.index, uuid: g.uuid }, 'GPU is gone from the driver; its devices are Unhealthy');
      for (const p of cluster.pods.list() as KubePod[]) {
        const text = p.metadata?.annotations?.[ASSIGNMENT];
        const a = text === undefined ? null : parseAssignment(text);
        if (a === null || typeof a === 'string' || a.node !== options.nodeName) continue;
        if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') continue;
        if (a.gpus.some((s) => s.index === g.index))
          void cluster.podEvent(
            p,
            'Warning',
            'TesseraGpuUnhealthy',
            `GPU ${g.index} (${g.uuid}) assigned to this pod disappeared from the driver on node ${options.nodeName}; its devices are Unhealthy and the pod may have lost its GPU`,
          );
      }
    }
  };

  await cluster.start();
  decide();
  await labelNode();
  await plugin.start();

  const healthTimer = setInterval(rescan, options.healthIntervalMs);
  healthTimer.unref();
  const decideTimer = setInterval(() => {
    const before = `${delivery.mode}/${enforcement.kind}`;
    decide();
    if (`${delivery.mode}/${enforcement.kind}` !== before) void labelNode();
  }, 60_000);
  decideTimer.unref();

  const app = express();
  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });
  app.get('/readyz', (_req, res) => {
    const problems = [
      ...(plugin.registered ? [] : [plugin.problem ?? 'not registered with the kubelet']),
      ...(cluster.pods.synced ? [] : [`pods: ${cluster.pods.problem}`]),
    ];
    res
      .status(problems.length === 0 ? 200 : 503)
      .type('text/plain')
      .send(problems.length === 0 ? 'ok' : problems.join('\n'));
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  const http = await serve(app, { host: options.host, port: options.port, log });
  log.info({ url: http.url, node: options.nodeName, delivery, enforcement }, 'node agent serving');

  return {
    url: http.url,
    plugin,
    metrics,
    state: () => ({ delivery, enforcement: enforcement.kind, gpus, unhealthy: [...unhealthy] }),
    rescan,
    async close() {
      clearInterval(healthTimer);
      clearInterval(decideTimer);
      await plugin.close();
      await http.close();
      await cluster.stop();
    },
  };
}

function writeOwnCdiSpec(path: string, kind: string, gpus: readonly NodeGpu[], devRoot: string, log: Logger): void {
  const control = ['nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools'].filter((d) => existsSync(join(devRoot, 'dev', d)));
  const spec = cdiSpecFor(kind, gpus, devRoot, control);
  mkdirSync(dirname(path), { recursive: true });
  // Written whole, then renamed: the runtime never reads half a spec.
  writeFileSync(`${path}.tmp`, `${JSON.stringify(spec, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
  log.info({ path, kind, devices: gpus.length }, 'wrote the agent’s CDI spec');
}

function deliveryModeOf(value: string | undefined): DeliveryMode | null {
  return (DELIVERY_MODES as readonly string[]).includes(value ?? '') ? (value as DeliveryMode) : null;
}
