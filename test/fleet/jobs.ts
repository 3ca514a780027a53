// Jobs and what became of them in a fleet (test/fleet/fleet.ts): GPU Jobs submitted to the manager's queues, their
// manager Workloads, where they run, the per-cluster per-tenant table of GPU-equivalents, and filler pods that a
// cluster's own users run outside the fleet.

import { BatchV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import type { KubeJson } from '../../server/kube-json.ts';
import { DISPATCH_ANNOTATION } from '../../dispatcher/dispatcher.ts';
import type { Fleet } from './fleet.ts';
import { QUEUE } from './fleet.ts';
import { parseQuantity } from '../../core/quantity.ts';

export interface JobAsk {
  /** A share of one GPU asked with Tessera's annotation tessera.io/gpu-fraction alone (no resource in the template:
   * the manager's job webhook writes the countable tessera.io/gpu-milli). */
  readonly fraction?: number;
  /** A share of one GPU asked with the resource tessera.io/gpu-milli (in thousandths). */
  readonly milli?: number;
  /** Whole GPUs, asked with nvidia.com/gpu (Kueue's transformation counts 1000 gpu-milli each). */
  readonly gpus?: number;
  readonly pods?: number;
  /** Pin the job to a pool (template annotation and nodeSelector, so that Kueue picks that pool's flavor). */
  readonly pool?: string;
}

/** The GPU resources a pod of the ask writes (none for an annotation-only fraction). */
function resourcesOf(ask: JobAsk): Record<string, string> {
  if (ask.fraction !== undefined) return {};
  if (ask.milli !== undefined) return { 'tessera.io/gpu-milli': String(ask.milli) };
  return { 'nvidia.com/gpu': String(ask.gpus ?? 1) };
}

/** A batch/v1 Job for the manager's queue `gpu`, whose pods run (on KWOK) until the Job is deleted. */
export function gpuJob(name: string, tenant: string, ask: JobAsk) {
  const pods = ask.pods ?? 1;
  const resources = resourcesOf(ask);
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: tenant, labels: { 'kueue.x-k8s.io/queue-name': QUEUE } },
    spec: {
      // Kueue's Job webhook defaults this when the queue's ClusterQueue has the MultiKueue check; the one fleet run
      // saw it left empty (the MultiKueue check then Rejected the job), so the job says it.
      managedBy: 'kueue.x-k8s.io/multikueue',
      parallelism: pods,
      completions: pods,
      backoffLimit: 0,
      template: {
        metadata: {
          annotations: {
            'kwok.tessera.io/run-for': '2h',
            ...(ask.fraction !== undefined ? { 'tessera.io/gpu-fraction': String(ask.fraction) } : {}),
            ...(ask.pool ? { 'tessera.io/pool': ask.pool } : {}),
          },
        },
        spec: {
          restartPolicy: 'Never',
          ...(ask.pool ? { nodeSelector: { 'tessera.io/pool': ask.pool } } : {}),
          containers: [
            {
              name: 'train',
              image: 'registry.example/train:1',
              ...(Object.keys(resources).length > 0 ? { resources: { limits: resources, requests: resources } } : {}),
            },
          ],
        },
      },
    },
  };
}

export async function submit(fleet: Fleet, name: string, tenant: string, ask: JobAsk): Promise<void> {
  await fleet.managerAdmin
    .makeApiClient(BatchV1Api)
    .createNamespacedJob({ namespace: tenant, body: gpuJob(name, tenant, ask) as never });
}

export async function deleteJob(fleet: Fleet, name: string, tenant: string): Promise<void> {
  await fleet.managerAdmin
    .makeApiClient(BatchV1Api)
    .deleteNamespacedJob({ name, namespace: tenant, propagationPolicy: 'Background' });
}

export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface WorkloadView {
  metadata: {
    name: string;
    namespace: string;
    annotations?: Record<string, string>;
    ownerReferences?: { kind: string; name: string }[];
  };
  status?: {
    conditions?: Condition[];
    clusterName?: string;
    nominatedClusterNames?: string[];
    admissionChecks?: { name: string; state: string; message?: string }[];
    admission?: { podSetAssignments?: { resourceUsage?: Record<string, string>; flavors?: Record<string, string> }[] };
  };
}

export const isTrue = (w: WorkloadView | undefined, type: string) =>
  (w?.status?.conditions ?? []).some((c) => c.type === type && c.status === 'True');

/**
 * The Workload of a Job in a cluster, or undefined: the one it owns, or on a worker MultiKueue's copy, which has the
 * manager's Workload name (job-<job>-<5 hex>, Kueue's GetWorkloadNameForOwnerWithGVK) and no owner until MultiKueue
 * creates the worker's Job, once that copy reserved quota.
 */
export async function workloadOf(api: KubeJson, job: string, namespace: string): Promise<WorkloadView | undefined> {
  const list = await api.get<{ items: WorkloadView[] }>(
    `/apis/kueue.x-k8s.io/v1beta2/namespaces/${namespace}/workloads`,
  );
  const named = new RegExp(`^job-${job}-[0-9a-f]{5}$`);
  return (
    list.items.find((w) => w.metadata.ownerReferences?.some((o) => o.kind === 'Job' && o.name === job)) ??
    list.items.find((w) => named.test(w.metadata.name))
  );
}

/** The job's pods in a cluster that run on a node (bound, not ended). */
export async function runningPods(api: CoreV1Api, job: string, namespace: string): Promise<V1Pod[]> {
  const pods = await api.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/job-name=${job}` });
  return pods.items.filter((p) => p.spec?.nodeName && p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp);
}

/** Where a job runs: the workers on which its pods run (a job must never run on two). */
export async function whereRunning(fleet: Fleet, job: string, namespace: string): Promise<string[]> {
  const out: string[] = [];
  for (const w of fleet.workers)
    if ((await runningPods(w.admin.makeApiClient(CoreV1Api), job, namespace).catch(() => [])).length > 0)
      out.push(w.spec.name);
  return out;
}

/** Why a job waits, as the manager shows it: the dispatcher's note and the MultiKueue check's message. */
export async function waitingReason(fleet: Fleet, job: string, namespace: string): Promise<string> {
  const wl = await workloadOf(fleet.managerApi, job, namespace);
  if (!wl) return 'no workload yet';
  const checks = (wl.status?.admissionChecks ?? []).map((c) => `${c.name}=${c.state}: ${c.message ?? ''}`);
  return [wl.metadata.annotations?.[DISPATCH_ANNOTATION] ?? '', ...checks].filter(Boolean).join(' | ');
}

/** Quota a ClusterQueue has reserved, in tessera.io/gpu-milli, over its flavors (a quantity: 2000 reads "2k"). */
export async function reservedMilli(api: KubeJson, clusterQueue: string): Promise<number> {
  const cq = await api.get<{
    status?: { flavorsReservation?: { resources?: { name: string; total?: string }[] }[] };
  }>(`/apis/kueue.x-k8s.io/v1beta2/clusterqueues/${clusterQueue}`);
  let milli = 0;
  for (const f of cq.status?.flavorsReservation ?? [])
    for (const r of f.resources ?? []) if (r.name === 'tessera.io/gpu-milli') milli += parseQuantity(r.total ?? '0');
  return milli;
}

export interface TableRow {
  readonly cluster: string;
  readonly tenant: string;
  /** Kueue's reservation of the tenant's ClusterQueue, in GPU-equivalents. */
  readonly kueue: number;
  /** What Tessera's extender holds for the tenant's pods (workers only). */
  readonly tessera: number | null;
}

/** Per cluster and tenant, GPU-equivalents counted by Kueue and (on workers) by Tessera. */
export async function equivalentsTable(fleet: Fleet, tenants: readonly string[]): Promise<TableRow[]> {
  const rows: TableRow[] = [];
  for (const t of tenants)
    rows.push({
      cluster: 'manager',
      tenant: t,
      kueue: (await reservedMilli(fleet.managerApi, t)) / 1000,
      tessera: null,
    });
  for (const w of fleet.workers)
    for (const t of tenants)
      rows.push({
        cluster: w.spec.name,
        tenant: t,
        kueue: (await reservedMilli(w.api, t).catch(() => 0)) / 1000,
        tessera: Math.round((w.stack.extender?.state.ledger.tenantEquivalents(t) ?? 0) * 1000) / 1000,
      });
  return rows;
}

export function formatTable(rows: readonly TableRow[]): string {
  const lines = [['cluster', 'tenant', 'Kueue (GPU-eq)', 'Tessera (GPU-eq)']];
  for (const r of rows)
    lines.push([r.cluster, r.tenant, String(r.kueue), r.tessera === null ? '-' : String(r.tessera)]);
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  return lines.map((l) => l.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}

/** A pod of the cluster's own users (tenant `local`), outside the fleet, holding GPUs in a pool until deleted. */
export async function fillerPod(core: CoreV1Api, name: string, pool: string, ask: JobAsk): Promise<void> {
  const resources =
    ask.fraction !== undefined ? { 'tessera.io/gpu-milli': String(Math.round(ask.fraction * 1000)) } : resourcesOf(ask);
  await core.createNamespacedPod({
    namespace: 'local',
    body: {
      metadata: { name, annotations: { 'tessera.io/pool': pool } },
      spec: { containers: [{ name: 'c', image: 'registry.example/serve:1', resources: { limits: resources } }] },
    },
  });
}
