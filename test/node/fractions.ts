// Fraction pods on the real node, end to end: the webhook admits them, tessera-scheduler places them through the
// extender, the kubelet starts them (through Tessera's node agent when it serves the node), containerd makes the
// containers, and each container prints what it sees of GPUs (gpu-reporter/reporter.c). What a container saw is read
// from its log file, never from the pod's annotations; what it was assigned is read from `tessera.io/assignment` and
// turned into UUIDs through the fake driver tree.

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';
import { until } from '../fixtures/waiting.ts';
import type { FakeGpus } from './fake-gpus.ts';
import { type ContainerReport, parseContainerReport, type SeenGpus, seenGpus } from './gpu-reporter/seen.ts';
import { NODE_NAME, type NodeStack } from './harness.ts';

/** How GPUs reach the containers: the old downward-API wiring, or one of the node agent's delivery modes. */
export type Delivery = 'downward-api' | 'cdi-cri' | 'envvar' | 'volume-mounts';

export const TENANT_NAMESPACES = { research: 'gpu-research', 'payments-ml': 'gpu-payments' } as const;

export interface RanPod {
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly tenant: string;
  readonly delivery: Delivery;
  /** UUIDs of the GPUs tessera.io/assignment names (indices mapped through the fake driver tree). */
  readonly assigned: readonly string[];
  readonly seen: SeenGpus;
  readonly report: ContainerReport;
  readonly pod: V1Pod;
  /** Milliseconds from the watch first seeing the pod bound to it first seeing its container started. */
  readonly bindToRunningMs: number;
  /** When the watch first saw it bound (this process's clock). */
  readonly boundAt: number;
}

/** Every fraction pod that ran, for `--report` (run.ts). */
export class FractionReport {
  readonly pods: RanPod[] = [];
  add(p: RanPod): void {
    this.pods.push(p);
  }
  toJSON() {
    return {
      pods: this.pods.map((p) => ({
        namespace: p.namespace,
        name: p.name,
        node: p.node,
        delivery: p.delivery,
        assigned: p.assigned,
        seen: p.seen.all,
      })),
    };
  }
  /** Writes the report where TESSERA_NODE_REPORT names (npm run test:node -- --report FILE); returns the file. */
  writeIfAsked(): string | undefined {
    const file = process.env.TESSERA_NODE_REPORT;
    if (!file) return undefined;
    writeFileSync(file, `${JSON.stringify(this.toJSON(), null, 2)}\n`);
    return file;
  }
}

/** Labels that make the real node a fraction node of pool shared-h100 with the fake GPUs (what GPU feature discovery
 * would put there). The pool's taint is not set: Tessera's own pods run on this one node. */
export function fractionNodeLabels(gpus: FakeGpus): Record<string, string> {
  return {
    'tessera.io/pool': 'shared-h100',
    'tessera.io/sharing': 'fraction',
    'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3',
    'nvidia.com/gpu.count': String(gpus.gpus.length),
    'nvidia.com/gpu.memory': '81559',
    'nvidia.com/gpu.sharing-strategy': 'none',
  };
}

export function reporterPod(name: string, namespace: string, image: string, fraction: string): V1Pod {
  return {
    metadata: {
      name,
      namespace,
      labels: { team: 'gpu-report', 'cost-center': '4242' },
      annotations: { 'tessera.io/gpu-fraction': fraction },
    },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': NODE_NAME },
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 2,
      schedulingGates: [{ name: 'tessera.test/burst' }],
      containers: [{ name: 'main', image, imagePullPolicy: 'Never' }],
    },
  };
}

/** The container's log as the kubelet wrote it (its pod log folder), all rotated files in order. */
export function containerLog(stack: NodeStack, namespace: string, pod: string, container = 'main'): string {
  const folder = readdirSync(stack.node.podLogsDir).find((d) => d.startsWith(`${namespace}_${pod}_`));
  if (!folder) return '';
  const dir = join(stack.node.podLogsDir, folder, container);
  let files: string[];
  try {
    files = readdirSync(dir).sort();
  } catch {
    return '';
  }
  return files.map((f) => readFileSync(join(dir, f), 'utf8')).join('\n');
}

export function assignedUuids(pod: V1Pod, gpus: FakeGpus): string[] {
  const raw = pod.metadata?.annotations?.['tessera.io/assignment'];
  if (!raw) return [];
  const a = JSON.parse(raw) as { gpus: { index: number }[] };
  return a.gpus.map((g) => gpus.byIndex(g.index)?.uuid ?? `unknown-index-${g.index}`).sort();
}

const started = (p: V1Pod): boolean =>
  p.status?.containerStatuses?.some((c) => c.state?.running !== undefined) ?? false;

export interface BurstOptions {
  readonly stack: NodeStack;
  readonly admin: CoreV1Api;
  /** The user creating the pods (a tenant user with pod rights in both namespaces). */
  readonly user: CoreV1Api;
  readonly adminConfig: KubeConfig;
  readonly delivery: Delivery;
  /** Pod name prefix, unique per burst. */
  readonly prefix: string;
  /** Pods per tenant. */
  readonly perTenant: number;
  /** Instead of `perTenant` pods per tenant: these pods (tenant, namespace, name), e.g. refused ones made again. */
  readonly only?: readonly (readonly [string, string, string])[];
  readonly fraction: string;
  /** Called once the first pods are bound, while the others are still starting (agent and kubelet restarts). */
  readonly midRun?: () => Promise<void>;
  readonly log: (line: string) => void;
}

/** A pod the kubelet refused at admission (phase Failed before any container ran). */
export interface RefusedPod {
  readonly tenant: string;
  readonly namespace: string;
  readonly name: string;
  readonly reason: string;
  readonly message: string;
}

export interface Burst {
  readonly pods: RanPod[];
  readonly refused: RefusedPod[];
  /** Milliseconds between the first and the last pod bound. */
  readonly bindSpreadMs: number;
  /** Where the bind times come from: the extender's "bound" log lines, or (when some are missing) the watch. */
  readonly bindTimesFrom?: 'the extender’s log' | 'the watch';
}

/**
 * Creates `perTenant` gated pods in each tenant's namespace, then lifts every gate at once so that the scheduler and
 * the extender bind them together, and waits until each container has printed its report.
 */
export async function runBurst(o: BurstOptions): Promise<Burst> {
  const { stack, user } = o;
  const names: (readonly [string, string, string])[] = [...(o.only ?? [])];
  if (!o.only)
    for (let i = 0; i < o.perTenant; i++)
      for (const [tenant, ns] of Object.entries(TENANT_NAMESPACES))
        names.push([tenant, ns, `${o.prefix}-${ns.slice(4)}-${i}`]);
  const boundAt = new Map<string, number>();
  const runningAt = new Map<string, number>();
  const failed = new Map<string, V1Pod>();
  const watches = await Promise.all(
    Object.values(TENANT_NAMESPACES).map((ns) =>
      new Watch(o.adminConfig).watch(
        `/api/v1/namespaces/${ns}/pods`,
        {},
        (_type, pod: V1Pod) => {
          const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
          const now = Date.now();
          if (pod.spec?.nodeName && !boundAt.has(key)) boundAt.set(key, now);
          if (started(pod) && !runningAt.has(key)) runningAt.set(key, now);
          if (pod.status?.phase === 'Failed' && !runningAt.has(key)) failed.set(key, pod);
        },
        () => {},
      ),
    ),
  );
  try {
    for (const [, ns, name] of names)
      await user.createNamespacedPod({ namespace: ns, body: reporterPod(name, ns, stack.reporterImage, o.fraction) });
    // Every gate lifted at once: the scheduler sees all pods together.
    await Promise.all(
      names.map(([, ns, name]) =>
        user.patchNamespacedPod(
          { name, namespace: ns, body: [{ op: 'remove', path: '/spec/schedulingGates' }] },
          setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
        ),
      ),
    );
    if (o.midRun) {
      await until('the first pods bound', async () => boundAt.size >= 2, 120_000);
      await o.midRun();
    }
    await until(
      `all ${names.length} pods of ${o.prefix} started (or refused by the kubelet)`,
      async () => names.every(([, ns, name]) => runningAt.has(`${ns}/${name}`) || failed.has(`${ns}/${name}`)),
      300_000,
      500,
    ).catch(async (e: Error) => {
      const state = await Promise.all(
        names.map(async ([, ns, name]) => {
          const p = await o.admin.readNamespacedPod({ name, namespace: ns });
          return `${ns}/${name}: ${p.status?.phase} node=${p.spec?.nodeName ?? '-'} ${JSON.stringify(p.status?.containerStatuses?.[0]?.state ?? p.status?.conditions?.filter((c) => c.status !== 'True'))}`;
        }),
      );
      throw new Error(`${e.message}\n${state.join('\n')}\nkubelet:\n${stack.node.logTail('kubelet', 30)}`);
    });
  } finally {
    for (const w of watches) w.abort();
  }
  const pods: RanPod[] = [];
  const refused: RefusedPod[] = [];
  for (const [tenant, ns, name] of names) {
    const gone = failed.get(`${ns}/${name}`);
    if (gone) {
      refused.push({
        tenant,
        namespace: ns,
        name,
        reason: gone.status?.reason ?? '',
        message: gone.status?.message ?? '',
      });
      continue;
    }
    const report = await until(`${ns}/${name} printed its report`, async () => {
      const r = parseContainerReport(containerLog(stack, ns, name));
      return r.complete && r;
    });
    const pod = await o.admin.readNamespacedPod({ name, namespace: ns });
    const key = `${ns}/${name}`;
    pods.push({
      namespace: ns,
      name,
      node: pod.spec?.nodeName ?? '',
      tenant,
      delivery: o.delivery,
      assigned: assignedUuids(pod, stack.gpus),
      seen: seenGpus(report, stack.gpus.gpus),
      report,
      pod,
      bindToRunningMs: runningAt.get(key)! - boundAt.get(key)!,
      boundAt: boundAt.get(key)!,
    });
  }
  // When each Binding was written, as the extender logged it ("bound", its own clock on this machine): a watch's first
  // sight depends on when this busy test process reads its events (it once saw 8 binds "within 1 ms").
  const logged = await extenderBindTimes(
    stack,
    names.map(([, ns, name]) => `${ns}/${name}`),
  );
  const times = logged.size === names.length ? [...logged.values()] : [...boundAt.values()];
  return {
    pods,
    refused,
    bindSpreadMs: Math.max(...times) - Math.min(...times),
    bindTimesFrom: logged.size === names.length ? 'the extender’s log' : 'the watch',
  };
}

/** The time each of these pods (namespace/name) was bound, from the extender pods' logs ("bound" lines). */
async function extenderBindTimes(stack: NodeStack, keys: readonly string[]): Promise<Map<string, number>> {
  const wanted = new Set(keys);
  const found = new Map<string, number>();
  for (const p of await stack.tesseraPods()) {
    if (p.metadata?.labels?.['app.kubernetes.io/name'] !== 'tessera-extender') continue;
    for (const line of stack.node.podLogs('tessera-system', p.metadata.name!).split('\n')) {
      const at = line.indexOf('{');
      if (at < 0 || !line.includes('"bound"')) continue;
      try {
        const e = JSON.parse(line.slice(at)) as { msg?: string; pod?: string; time?: number };
        if (e.msg === 'bound' && e.pod && wanted.has(e.pod) && e.time) found.set(e.pod, e.time);
      } catch {
        // a line cut by log rotation
      }
    }
  }
  return found;
}

/** Deletes a burst's pods and waits until the kubelet has stopped them (their GPU shares are free again). */
export async function deleteBurst(o: { admin: CoreV1Api; stack: NodeStack }, burst: Burst): Promise<void> {
  for (const p of burst.pods)
    await o.admin.deleteNamespacedPod({ name: p.name, namespace: p.namespace, gracePeriodSeconds: 0 }).catch(() => {});
  await until(
    'the burst’s pods gone',
    async () => {
      for (const p of [...burst.pods, ...burst.refused]) {
        const gone = await o.admin.readNamespacedPod({ name: p.name, namespace: p.namespace }).then(
          () => false,
          () => true,
        );
        if (!gone) return false;
      }
      return true;
    },
    120_000,
    500,
  );
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
