// The Kueue AdmissionCheck controller tessera.io/gpu-fit, run by the leading extender replica of a worker cluster. A
// ClusterQueue that lists an AdmissionCheck with spec.controllerName tessera.io/gpu-fit admits a Workload only once
// this controller sets that check's state (Workload status.admissionChecks[name]) to Ready: when Tessera's own
// policy, the tenant's quota in this cluster and the pools' free GPUs hold all its pods now (core/fleet/gpu-fit.ts).
// Under MultiKueue the worker that answers Ready first wins the job; one answering Pending loses the race.
//
// Kueue's contract (kueue v0.17.0 apis/kueue/v1beta2/admissioncheck_types.go, workload_types.go): the controller marks
// its AdmissionChecks Active (else their ClusterQueues stay inactive), and writes check states Pending, Ready, Retry
// or Rejected with a message. States are written with server-side apply as tessera-gpu-fit, on our entry only.
// Workloads are polled: a pass is a few list calls, and answers never wait longer than one interval.

import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { type CheckState, decideGpuFit, type FitSubject } from '../core/fleet/gpu-fit.ts';
import { podSetsOf } from '../core/fleet/job-ask.ts';
import type { KubePod } from '../core/kube-objects.ts';
import { isTerminated } from '../core/pod-lifecycle.ts';
import type { SchedulingState } from '../core/scheduling/state.ts';
import type { KubeJson } from '../server/kube-json.ts';

export const GPU_FIT_CONTROLLER = 'tessera.io/gpu-fit';
const KUEUE = '/apis/kueue.x-k8s.io/v1beta2';
const MANAGER = 'tessera-gpu-fit';

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

interface CheckStatus {
  name: string;
  state: CheckState;
  message?: string;
}

interface Workload {
  metadata: {
    name: string;
    namespace: string;
    creationTimestamp?: string;
    ownerReferences?: { kind: string; name: string }[];
  };
  spec?: { podSets?: unknown };
  status?: {
    conditions?: Condition[];
    admissionChecks?: CheckStatus[];
    admission?: { podSetAssignments?: { name: string; flavors?: Record<string, string> }[] };
  };
}

export interface GpuFitCheckOptions {
  readonly api: KubeJson;
  readonly state: SchedulingState;
  /** The pods the extender watches (to see which pods of a Ready workload are placed yet). */
  readonly pods: () => readonly KubePod[];
  readonly isLeader: () => boolean;
  readonly intervalMs?: number;
  readonly registry: Registry;
  readonly log: Logger;
}

export interface GpuFitCheck {
  /** One pass now (tests); resolves with the states it wrote. */
  pass(): Promise<{ workload: string; state: CheckState; message: string }[]>;
  /** The last states written (up to 200), oldest first: what this worker answered, for logs and tests. */
  recent(): readonly { workload: string; state: CheckState; message: string }[];
  stop(): void;
}

const isTrue = (conditions: Condition[] | undefined, type: string) =>
  (conditions ?? []).some((c) => c.type === type && c.status === 'True');

/** Per pod set of a workload, the node labels its assigned ResourceFlavor will give its pods. */
function assignedSelectors(wl: Workload, flavors: Map<string, Record<string, string>>) {
  const out = new Map<string, Record<string, string>>();
  for (const a of wl.status?.admission?.podSetAssignments ?? []) {
    const labels: Record<string, string> = {};
    for (const flavor of Object.values(a.flavors ?? {})) Object.assign(labels, flavors.get(flavor) ?? {});
    out.set(a.name, labels);
  }
  return out;
}

/** How many pods of each pod set are not placed yet (bound pods of the workload's Job are placed). */
function unplacedOf(wl: Workload, podSets: { name: string; count: number }[], pods: readonly KubePod[]) {
  const job = wl.metadata.ownerReferences?.find((o) => o.kind === 'Job')?.name;
  const placed = pods.filter(
    (p) =>
      job !== undefined &&
      p.metadata?.namespace === wl.metadata.namespace &&
      p.metadata?.labels?.['batch.kubernetes.io/job-name'] === job &&
      p.spec?.nodeName &&
      !isTerminated(p),
  ).length;
  // A Job has one pod set; for more, the placed pods are counted against them in order.
  let left = placed;
  const out = new Map<string, number>();
  for (const ps of podSets) {
    const taken = Math.min(ps.count, left);
    left -= taken;
    out.set(ps.name, ps.count - taken);
  }
  return out;
}

export function startGpuFitCheck(o: GpuFitCheckOptions): GpuFitCheck {
  const decisions = new Counter({
    name: 'tessera_gpu_fit_decisions_total',
    help: 'States the tessera.io/gpu-fit admission check wrote, by state',
    labelNames: ['state'] as const,
    registers: [o.registry],
  });
  const activate = async (checks: string[]) => {
    for (const name of checks)
      await o.api.apply(
        `${KUEUE}/admissionchecks/${name}/status`,
        {
          apiVersion: 'kueue.x-k8s.io/v1beta2',
          kind: 'AdmissionCheck',
          metadata: { name },
          status: {
            conditions: [
              {
                type: 'Active',
                status: 'True',
                reason: 'Active',
                message: 'Tessera answers this check from its policy, quota and free GPUs',
                lastTransitionTime: new Date().toISOString(),
              },
            ],
          },
        },
        MANAGER,
      );
  };
  const history: { workload: string; state: CheckState; message: string }[] = [];
  const pass = async () => {
    const written: { workload: string; state: CheckState; message: string }[] = [];
    if (!o.isLeader()) return written;
    const checks = await o.api.get<{
      items: {
        metadata: { name: string };
        spec?: { controllerName?: string };
        status?: { conditions?: Condition[] };
      }[];
    }>(`${KUEUE}/admissionchecks`);
    const ours = checks.items.filter((c) => c.spec?.controllerName === GPU_FIT_CONTROLLER);
    await activate(ours.filter((c) => !isTrue(c.status?.conditions, 'Active')).map((c) => c.metadata.name));
    if (ours.length === 0) return written;
    const names = new Set(ours.map((c) => c.metadata.name));
    const flavors = new Map(
      (
        await o.api.get<{ items: { metadata: { name: string }; spec?: { nodeLabels?: Record<string, string> } }[] }>(
          `${KUEUE}/resourceflavors`,
        )
      ).items.map((f) => [f.metadata.name, f.spec?.nodeLabels ?? {}]),
    );
    const workloads = (await o.api.get<{ items: Workload[] }>(`${KUEUE}/workloads`)).items
      .filter((w) => !isTrue(w.status?.conditions, 'Finished'))
      .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? ''));
    const pods = o.pods();
    const ahead: FitSubject[] = [];
    const waiting: { wl: Workload; check: CheckStatus; subject: FitSubject }[] = [];
    for (const wl of workloads) {
      const check = wl.status?.admissionChecks?.find((c) => names.has(c.name));
      const podSets = podSetsOf(wl);
      if (!check || typeof podSets === 'string') continue;
      const subject: FitSubject = {
        namespace: wl.metadata.namespace,
        podSets,
        nodeSelectors: assignedSelectors(wl, flavors),
      };
      if (check.state === 'Ready') ahead.push({ ...subject, unplaced: unplacedOf(wl, podSets, pods) });
      else if ((check.state === 'Pending' || check.state === 'Retry') && isTrue(wl.status?.conditions, 'QuotaReserved'))
        waiting.push({ wl, check, subject });
    }
    for (const { wl, check, subject } of waiting) {
      const verdict = decideGpuFit(o.state, subject, ahead);
      if (verdict.state === 'Ready') ahead.push(subject);
      if (verdict.state === check.state && verdict.message === check.message) continue;
      await o.api.apply(
        `${KUEUE}/namespaces/${wl.metadata.namespace}/workloads/${wl.metadata.name}/status`,
        {
          apiVersion: 'kueue.x-k8s.io/v1beta2',
          kind: 'Workload',
          metadata: { name: wl.metadata.name, namespace: wl.metadata.namespace },
          status: {
            admissionChecks: [
              {
                name: check.name,
                state: verdict.state,
                message: verdict.message.slice(0, 1024),
                lastTransitionTime: new Date().toISOString(),
              },
            ],
          },
        },
        MANAGER,
      );
      decisions.inc({ state: verdict.state });
      const key = `${wl.metadata.namespace}/${wl.metadata.name}`;
      written.push({ workload: key, state: verdict.state, message: verdict.message });
      history.push({ workload: key, state: verdict.state, message: verdict.message });
      if (history.length > 200) history.shift();
      o.log.info({ workload: key, check: check.name, state: verdict.state, message: verdict.message }, 'gpu-fit');
    }
    return written;
  };
  let running: ReturnType<typeof pass> | null = null;
  const tick = () => {
    running ??= pass()
      .catch((e: unknown) => {
        o.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'gpu-fit pass failed');
        return [];
      })
      .finally(() => {
        running = null;
      });
  };
  const timer = setInterval(tick, o.intervalMs ?? 1_000);
  timer.unref();
  return {
    pass: () => running ?? pass(),
    recent: () => history,
    stop: () => clearInterval(timer),
  };
}
