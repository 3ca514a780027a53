// Tessera's MultiKueue dispatcher, on the manager cluster of a fleet. Kueue's manager runs with
// multiKueue.dispatcherName: tessera.io/fleet-dispatcher (apis/config/v1beta2 Configuration, v0.17.0): it then copies
// a Workload only to the workers named in its status.nominatedClusterNames, which this process writes
// (pkg/controller/admissionchecks/multikueue/workload.go nominateAndSynchronizeWorkers, "External dispatcher path").
// It reads each worker's published capacity (ConfigMap tessera-system/tessera-fleet-capacity) through the worker's
// MultiKueueCluster kubeconfig Secret, the tenant of the job's namespace, and the policy (the same files the workers
// run), and nominates by core/fleet/dispatch.ts. What it decided, and why, is the Workload's annotation
// tessera.io/fleet-dispatch, so a job that no worker may take shows its reason.

import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { readClusterCapacity } from '../core/fleet/capacity.ts';
import { nominateWorkers, type Pledged, pledge, type WorkerView } from '../core/fleet/dispatch.ts';
import { podSetAsks, podSetsOf } from '../core/fleet/job-ask.ts';
import type { Policy } from '../core/policy/model.ts';
import { tenantNamed } from '../core/policy/model.ts';
import { TENANT_LABEL } from '../core/well-known-names.ts';
import { KubeJson } from '../server/kube-json.ts';

export const DISPATCHER_NAME = 'tessera.io/fleet-dispatcher';
export const DISPATCH_ANNOTATION = 'tessera.io/fleet-dispatch';
const KUEUE = '/apis/kueue.x-k8s.io/v1beta2';
const MULTIKUEUE_CONTROLLER = 'kueue.x-k8s.io/multikueue';
const MANAGER = 'tessera-fleet-dispatcher';
const CAPACITY = '/api/v1/namespaces/tessera-system/configmaps/tessera-fleet-capacity';

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

interface Workload {
  metadata: { name: string; namespace: string; creationTimestamp?: string; annotations?: Record<string, string> };
  spec?: { podSets?: unknown };
  status?: {
    conditions?: Condition[];
    admissionChecks?: { name: string; state: string }[];
    nominatedClusterNames?: string[];
    clusterName?: string;
  };
}

export interface DispatcherOptions {
  /** The manager cluster. */
  readonly kubeconfig: KubeConfig;
  readonly policy: () => Policy | null;
  /** Kueue's namespace on the manager, where the MultiKueueCluster kubeconfig Secrets are. */
  readonly kueueNamespace?: string;
  readonly intervalMs?: number;
  readonly log: Logger;
}

export interface DispatchRecord {
  readonly workload: string;
  readonly nominated: readonly string[];
  readonly message: string;
}

export interface Dispatcher {
  pass(): Promise<DispatchRecord[]>;
  /** The workers' views the last pass read (capacity or why not). */
  workers(): readonly WorkerView[];
  stop(): void;
}

const isTrue = (conditions: Condition[] | undefined, type: string) =>
  (conditions ?? []).some((c) => c.type === type && c.status === 'True');

const same = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().every((x, i) => x === [...b].sort()[i]);

export function startDispatcher(o: DispatcherOptions): Dispatcher {
  const api = new KubeJson(o.kubeconfig);
  const ns = o.kueueNamespace ?? 'kueue-system';
  const clients = new Map<string, { kubeconfig: string; api: KubeJson }>();
  let lastViews: WorkerView[] = [];

  /** A worker's client from its MultiKueueCluster's kubeconfig Secret (rebuilt when the Secret changes). */
  const workerApi = async (secret: string): Promise<KubeJson> => {
    const s = await api.get<{ data?: Record<string, string> }>(`/api/v1/namespaces/${ns}/secrets/${secret}`);
    const text = Buffer.from(s.data?.kubeconfig ?? '', 'base64').toString('utf8');
    const known = clients.get(secret);
    if (known && known.kubeconfig === text) return known.api;
    const kc = new KubeConfig();
    kc.loadFromString(text);
    const client = new KubeJson(kc);
    clients.set(secret, { kubeconfig: text, api: client });
    return client;
  };

  const workerViews = async (): Promise<WorkerView[]> => {
    const clusters = await api.get<{
      items: {
        metadata: { name: string };
        spec?: { clusterSource?: { kubeConfig?: { location?: string } } };
        status?: { conditions?: Condition[] };
      }[];
    }>(`${KUEUE}/multikueueclusters`);
    return Promise.all(
      clusters.items.map(async (c): Promise<WorkerView> => {
        const name = c.metadata.name;
        const active = (c.status?.conditions ?? []).find((x) => x.type === 'Active');
        if (active?.status !== 'True')
          return { name, capacity: null, problem: `MultiKueueCluster not active (${active?.message ?? 'no status'})` };
        const secret = c.spec?.clusterSource?.kubeConfig?.location;
        if (!secret) return { name, capacity: null, problem: 'no kubeconfig Secret' };
        try {
          const worker = await workerApi(secret);
          const cm = await worker.get<{ data?: Record<string, string> }>(CAPACITY);
          const read = readClusterCapacity(cm.data?.['capacity.json']);
          return read.ok ? { name, capacity: read.capacity } : { name, capacity: null, problem: read.problem };
        } catch (e) {
          return {
            name,
            capacity: null,
            problem: `capacity unreadable: ${e instanceof Error ? e.message : String(e)}`,
          };
        }
      }),
    );
  };

  /** MultiKueue AdmissionCheck name -> the clusters of its MultiKueueConfig. */
  const multiKueueChecks = async (): Promise<Map<string, string[]>> => {
    const checks = await api.get<{
      items: { metadata: { name: string }; spec?: { controllerName?: string; parameters?: { name?: string } } }[];
    }>(`${KUEUE}/admissionchecks`);
    const out = new Map<string, string[]>();
    for (const c of checks.items) {
      if (c.spec?.controllerName !== MULTIKUEUE_CONTROLLER || !c.spec.parameters?.name) continue;
      const cfg = await api
        .get<{ spec?: { clusters?: string[] } }>(`${KUEUE}/multikueueconfigs/${c.spec.parameters.name}`)
        .catch(() => null);
      out.set(c.metadata.name, cfg?.spec?.clusters ?? []);
    }
    return out;
  };

  const pass = async (): Promise<DispatchRecord[]> => {
    const policy = o.policy();
    if (policy === null) return [];
    const [views, checks, namespaces, workloads] = await Promise.all([
      workerViews(),
      multiKueueChecks(),
      api.get<{ items: { metadata: { name: string; labels?: Record<string, string> } }[] }>('/api/v1/namespaces'),
      api.get<{ items: Workload[] }>(`${KUEUE}/workloads`),
    ]);
    lastViews = views;
    const tenants = new Map(namespaces.items.map((n) => [n.metadata.name, n.metadata.labels?.[TENANT_LABEL] ?? null]));
    const pledged: Pledged = new Map();
    const records: DispatchRecord[] = [];
    const pending = workloads.items
      .filter(
        (w) =>
          !isTrue(w.status?.conditions, 'Finished') &&
          isTrue(w.status?.conditions, 'QuotaReserved') &&
          !w.status?.clusterName,
      )
      .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''));
    for (const wl of pending) {
      const check = wl.status?.admissionChecks?.find((c) => checks.has(c.name));
      if (!check) continue;
      const allowed = new Set(checks.get(check.name));
      const key = `${wl.metadata.namespace}/${wl.metadata.name}`;
      const tenantName = tenants.get(wl.metadata.namespace) ?? null;
      const tenant = tenantName === null ? undefined : tenantNamed(policy, tenantName);
      const podSets = podSetsOf(wl);
      let asks: ReturnType<typeof podSetAsks> = [];
      let refusal: string | null = null;
      if (!tenant)
        refusal = `namespace ${wl.metadata.namespace} has no tenant of the policy (${TENANT_LABEL}=${tenantName ?? 'unset'}); no worker gives it GPUs`;
      else if (typeof podSets === 'string') refusal = podSets;
      else {
        asks = podSetAsks(podSets, wl.metadata.namespace, tenant, policy);
        if (typeof asks === 'string') refusal = asks;
      }
      const current = wl.status?.nominatedClusterNames ?? [];
      const decision =
        refusal !== null || typeof asks === 'string'
          ? { nominated: [] as string[], message: refusal ?? '' }
          : nominateWorkers(
              asks,
              views.filter((v) => allowed.has(v.name)),
              current,
              pledged,
            );
      if (typeof asks !== 'string' && decision.nominated.length > 0) {
        const first = views.find((v) => v.name === decision.nominated[0]);
        if (first?.capacity) pledge(pledged, first.name, asks, first.capacity);
      }
      const changed = !same(current, decision.nominated);
      const noted = wl.metadata.annotations?.[DISPATCH_ANNOTATION];
      if (changed)
        await api.mergePatch(
          `${KUEUE}/namespaces/${wl.metadata.namespace}/workloads/${wl.metadata.name}/status`,
          { status: { nominatedClusterNames: decision.nominated.length > 0 ? decision.nominated : null } },
          MANAGER,
        );
      if (changed || (decision.nominated.length === 0 && noted !== decision.message)) {
        await api.mergePatch(
          `${KUEUE}/namespaces/${wl.metadata.namespace}/workloads/${wl.metadata.name}`,
          { metadata: { annotations: { [DISPATCH_ANNOTATION]: decision.message.slice(0, 1000) } } },
          MANAGER,
        );
        o.log.info({ workload: key, nominated: decision.nominated, message: decision.message }, 'dispatched');
      }
      records.push({ workload: key, nominated: decision.nominated, message: decision.message });
    }
    return records;
  };

  let running: Promise<DispatchRecord[]> | null = null;
  const tick = () => {
    running ??= pass()
      .catch((e: unknown) => {
        o.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'dispatch pass failed');
        return [];
      })
      .finally(() => {
        running = null;
      });
  };
  const timer = setInterval(tick, o.intervalMs ?? 1_000);
  timer.unref();
  return { pass: () => running ?? pass(), workers: () => lastViews, stop: () => clearInterval(timer) };
}
