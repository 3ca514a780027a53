// Allocate and GetPreferredAllocation for tessera.io/gpu-milli: find the pod the kubelet is admitting (PodResources
// List + the node's pods, core/node-agent/admitting-pod.ts), check its assignment, answer in the node's delivery mode.
// A refusal fails the pod's admission with the message (the kubelet reports it as UnexpectedAdmissionError) and is
// recorded as an Event on the pod when the pod is known.

import type { Logger } from 'pino';
import { parseAssignment, type Assignment } from '../core/assignment.ts';
import type { KubePod } from '../core/kube-objects.ts';
import { identifyAdmittingPod, type AdmittingPod, type ListedPod } from '../core/node-agent/admitting-pod.ts';
import {
  assignedShares,
  containerAnswer,
  type AnswerOptions,
  type AssignedShare,
  type ContainerAnswer,
} from '../core/node-agent/allocation-answer.ts';
import type { NodeGpu } from '../core/node-agent/node-gpus.ts';
import { preferredIds } from '../core/node-agent/preferred.ts';
import { ASSIGNMENT, GPU_MILLI } from '../core/well-known-names.ts';
import type { AgentCluster } from './cluster.ts';
import { AllocateRefused, type AllocateRequest, type PreferredRequest } from './kubelet-plugin.ts';
import type { WireContainerAllocateResponse } from './kubelet-protos.ts';
import type { AgentMetrics } from './metrics.ts';

export interface AllocatorDeps {
  readonly nodeName: string;
  readonly cluster: AgentCluster;
  readonly podResources: { list(resource: string): Promise<ListedPod[]> };
  readonly gpus: () => { gpus: readonly NodeGpu[]; unhealthy: ReadonlySet<string> };
  readonly schedulerNames: readonly string[];
  /** The answer's mode, CDI kind, enforcement and paths, as the node is now. */
  readonly answerOptions: (pod: KubePod) => AnswerOptions;
  readonly metrics: AgentMetrics;
  readonly log: Logger;
}

const keyOf = (p: KubePod) => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;
const terminal = (p: KubePod) => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';

export function toWire(answer: ContainerAnswer): WireContainerAllocateResponse {
  return {
    envs: answer.envs,
    mounts: answer.mounts.map((m) => ({
      container_path: m.containerPath,
      host_path: m.hostPath,
      read_only: m.readOnly,
    })),
    devices: [],
    annotations: {},
    cdi_devices: answer.cdiDevices.map((name) => ({ name })),
  };
}

export class Allocator {
  private readonly deps: AllocatorDeps;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(deps: AllocatorDeps) {
    this.deps = deps;
  }

  /** One call at a time: the kubelet admits pods one at a time anyway, and identification assumes it. */
  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  async allocate(request: AllocateRequest): Promise<{ container_responses: WireContainerAllocateResponse[] }> {
    return this.serialized(async () => {
      const started = performance.now();
      try {
        const responses: WireContainerAllocateResponse[] = [];
        for (const c of request.container_requests ?? [])
          responses.push(await this.allocateContainer(c.devices_ids ?? []));
        const seconds = (performance.now() - started) / 1000;
        this.deps.metrics.allocateSeconds.observe({ outcome: 'allocated' }, seconds);
        this.deps.log.info({ containers: responses.length, ms: Math.round(seconds * 10_000) / 10 }, 'Allocate done');
        return { container_responses: responses };
      } catch (e) {
        this.deps.metrics.allocateSeconds.observe({ outcome: 'refused' }, (performance.now() - started) / 1000);
        throw e;
      }
    });
  }

  async preferred(request: PreferredRequest): Promise<{ container_responses: { deviceIDs: string[] }[] }> {
    return this.serialized(async () => {
      const out: { deviceIDs: string[] }[] = [];
      for (const c of request.container_requests ?? []) {
        const size = c.allocation_size;
        let shares: readonly AssignedShare[] = [];
        try {
          const found = await this.identify(size);
          const checked = await this.check(found.pod);
          if (checked.ok) shares = checked.shares;
        } catch {
          // No preference: Allocate will refuse with the reason.
        }
        out.push({
          deviceIDs: preferredIds(c.available_deviceIDs ?? [], c.must_include_deviceIDs ?? [], size, shares),
        });
      }
      return { container_responses: out };
    });
  }

  private async identify(requested: number): Promise<AdmittingPod> {
    let listed: ListedPod[];
    try {
      listed = await this.deps.podResources.list(GPU_MILLI);
    } catch (e) {
      this.deps.metrics.refusals.inc({ why: 'error' });
      throw new AllocateRefused(
        `Tessera's node agent cannot reach the kubelet's PodResources API to find the pod being started: ${(e as Error).message}`,
      );
    }
    const specs = new Map<string, KubePod | undefined>();
    for (const entry of listed) {
      const k = `${entry.namespace}/${entry.name}`;
      const cached = this.deps.cluster.pods.get(entry.name, entry.namespace) as KubePod | undefined;
      // The cache may not have seen a pod bound a moment ago: ask the API for the ones that could be it.
      specs.set(k, cached ?? (await this.deps.cluster.readPod(entry.namespace, entry.name)));
    }
    const id = identifyAdmittingPod(listed, (ns, name) => specs.get(`${ns}/${name}`), requested);
    if (!id.ok) {
      this.deps.metrics.refusals.inc({ why: 'unidentified' });
      throw new AllocateRefused(`Tessera's node agent on ${this.deps.nodeName}: ${id.message}`);
    }
    return id.found;
  }

  /** Assignments of the other live pods on this node. */
  private others(pod: KubePod, refreshed: ReadonlyMap<string, KubePod | undefined>): Map<string, Assignment> {
    const out = new Map<string, Assignment>();
    const self = keyOf(pod);
    for (const cached of this.deps.cluster.pods.list() as KubePod[]) {
      const k = keyOf(cached);
      const p = refreshed.has(k) ? refreshed.get(k) : cached;
      if (!p || k === self || terminal(p) || p.spec?.nodeName !== this.deps.nodeName) continue;
      const text = p.metadata?.annotations?.[ASSIGNMENT];
      if (text === undefined) continue;
      const a = parseAssignment(text);
      if (typeof a !== 'string' && a.node === this.deps.nodeName) out.set(k, a);
    }
    return out;
  }

  private async check(pod: KubePod) {
    const { gpus, unhealthy } = this.deps.gpus();
    const base = { node: this.deps.nodeName, gpus, unhealthy, schedulerNames: this.deps.schedulerNames };
    const first = assignedShares(pod, { ...base, others: this.others(pod, new Map()) });
    if (first.ok || !first.conflicts) return first;
    // The cache may still hold pods that are gone or finished: re-read the ones in the way, then judge again.
    const refreshed = new Map<string, KubePod | undefined>();
    for (const k of first.conflicts) {
      const [ns, name] = k.split('/') as [string, string];
      refreshed.set(k, await this.deps.cluster.readPod(ns, name));
    }
    return assignedShares(pod, { ...base, others: this.others(pod, refreshed) });
  }

  private async allocateContainer(ids: readonly string[]): Promise<WireContainerAllocateResponse> {
    const found = await this.identify(ids.length);
    const checked = await this.check(found.pod);
    if (!checked.ok) {
      this.deps.metrics.refusals.inc({ why: 'assignment' });
      void this.deps.cluster.podEvent(found.pod, 'Warning', 'TesseraGpuRefused', checked.message);
      this.deps.log.warn({ pod: keyOf(found.pod), why: checked.message }, 'Allocate refused');
      throw new AllocateRefused(`Tessera's node agent on ${this.deps.nodeName}: ${checked.message}`);
    }
    const options = this.deps.answerOptions(found.pod);
    const answer = containerAnswer(checked.shares, options);
    const gpus = checked.shares.map((s) => `${s.gpu.index} (${s.gpu.uuid}, ${s.milli} milli)`).join(', ');
    this.deps.log.info(
      { pod: keyOf(found.pod), container: found.container, mode: options.mode, enforcement: options.enforcement, gpus },
      'Allocate answered',
    );
    void this.deps.cluster.podEvent(
      found.pod,
      'Normal',
      'TesseraGpuAllocated',
      `container ${found.container} gets GPU ${gpus} by ${options.mode}${options.enforcement === 'none' ? '' : ` with ${options.enforcement} limits`}`,
    );
    return toWire(answer);
  }
}
