// What happened to each pod, as the API reports it: a watch on Pods (restarted after every error, e.g. an API server
// restart) notes when a pod is bound, when it finishes (Succeeded or Failed) and when kube-scheduler marks it for
// preemption (the DisruptionTarget condition with reason PreemptionByScheduler that kube-scheduler v1.37 patches onto a
// victim before deleting it). A pod that vanished while the watch was down is looked up among the "Preempted" events at
// the end. Finished bare pods are deleted a few seconds later by their user, as a TTL would, so the API stays small.

import { CoreV1Api, makeInformer, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { NAMESPACES } from './topology.ts';
import { ROLE_LABEL, SHAPE_LABEL } from './workloads.ts';

export interface PodRecord {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly shape: string;
  readonly role: string;
  readonly fromJob: boolean;
  bound: boolean;
  finished: 'Succeeded' | 'Failed' | null;
  preempted: boolean;
  deletedByUser: boolean;
  gone: boolean;
}

export function preemptedByScheduler(pod: V1Pod): boolean {
  return (pod.status?.conditions ?? []).some(
    (c) => c.type === 'DisruptionTarget' && c.status === 'True' && c.reason === 'PreemptionByScheduler',
  );
}

export class PodTracker {
  readonly pods = new Map<string, PodRecord>();
  private readonly kc: KubeConfig;
  private readonly informer;
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly onFinished: (r: PodRecord) => void;
  /** Watch restarts after errors. */
  restarts = 0;

  constructor(kc: KubeConfig, onFinished: (r: PodRecord) => void) {
    this.kc = kc;
    this.onFinished = onFinished;
    const core = kc.makeApiClient(CoreV1Api);
    this.informer = makeInformer<V1Pod>(kc, '/api/v1/pods', () => core.listPodForAllNamespaces());
    this.informer.on('add', (p) => this.see(p, false));
    this.informer.on('update', (p) => this.see(p, false));
    this.informer.on('delete', (p) => this.see(p, true));
    this.informer.on('error', () => {
      if (this.stopped) return;
      this.restarts++;
      const t = setTimeout(() => {
        this.timers.delete(t);
        if (!this.stopped) this.informer.start().catch(() => {});
      }, 1_000);
      this.timers.add(t);
    });
  }

  async start(): Promise<void> {
    await this.informer.start();
  }

  private see(pod: V1Pod, deleted: boolean): void {
    const meta = pod.metadata;
    const uid = meta?.uid;
    if (!uid || !meta?.namespace || !(meta.namespace in NAMESPACES)) return;
    let r = this.pods.get(uid);
    if (!r) {
      r = {
        uid,
        namespace: meta.namespace,
        name: meta.name ?? '',
        shape: meta.labels?.[SHAPE_LABEL] ?? 'unknown',
        role: meta.labels?.[ROLE_LABEL] ?? 'unknown',
        fromJob: (meta.ownerReferences ?? []).some((o) => o.kind === 'Job'),
        bound: false,
        finished: null,
        preempted: false,
        deletedByUser: false,
        gone: false,
      };
      this.pods.set(uid, r);
    }
    if (pod.spec?.nodeName) r.bound = true;
    if (preemptedByScheduler(pod)) r.preempted = true;
    const phase = pod.status?.phase;
    if ((phase === 'Succeeded' || phase === 'Failed') && r.finished === null) {
      r.finished = phase;
      this.onFinished(r);
    }
    if (deleted) r.gone = true;
  }

  /** Adds the victims named by kube-scheduler's "Preempted" events (for pods whose condition the watch missed). */
  async addPreemptionEvents(): Promise<number> {
    const core = this.kc.makeApiClient(CoreV1Api);
    let added = 0;
    for (const namespace of Object.keys(NAMESPACES)) {
      const events = await core.listNamespacedEvent({ namespace, fieldSelector: 'reason=Preempted' });
      for (const e of events.items) {
        const r = this.pods.get(e.involvedObject?.uid ?? '');
        if (r && !r.preempted) {
          r.preempted = true;
          added++;
        }
      }
    }
    return added;
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    void this.informer.stop();
  }
}
