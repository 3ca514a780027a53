// The extender's decisions, apart from HTTP: filter, prioritize, bind and preempt over the shared SchedulingState.
// Bind is the single commit point: under a per-node lock it re-checks the fit and the tenant's quota, then creates the
// Binding carrying the assignment annotations (one write, UID precondition), and drops the reservation on any error.

import type { Logger } from 'pino';
import { formatAssignment, visibleDevices } from '../core/assignment.ts';
import type { Placement } from '../core/fit.ts';
import type { KubeNode, KubePod } from '../core/kube-objects.ts';
import { newAllocation, type Allocation } from '../core/allocation.ts';
import { chooseVictims } from '../core/scheduling/preemption.ts';
import { ASSIGNMENT, VISIBLE_DEVICES } from '../core/well-known-names.ts';
import {
  evaluateNode,
  evaluateNodes,
  podContext,
  quotaReason,
  VerdictCache,
  type NodeVerdict,
} from '../core/scheduling/evaluate.ts';
import type { SchedulingState } from '../core/scheduling/state.ts';
import { kubeSchedulerPreference } from '../core/scheduling/kube-scores.ts';
import type { NodeInventory } from '../core/inventory/node-inventory.ts';
import { nodeFragmentation } from '../core/scoring/fragmentation.ts';
import { normaliseScores } from '../core/scoring/normalise.ts';
import { scoringContext, type ScoringContext, type Strategy } from '../core/scoring/strategy.ts';
import { podEquivalents } from '../core/pools/equivalents.ts';
import type { WorkloadProfile } from '../core/scoring/workload-profile.ts';
import { ConflictError, type ClusterWriter } from './cluster-writer.ts';
import type { ExtenderMetrics } from './metrics.ts';
import { NodeLocks } from './node-lock.ts';
import type {
  ExtenderArgs,
  ExtenderBindingArgs,
  ExtenderFilterResult,
  ExtenderPreemptionArgs,
  HostPriority,
  MetaVictims,
} from './wire.ts';

export interface SchedulerOptions {
  readonly state: SchedulingState;
  readonly strategy: Strategy;
  readonly writer: ClusterWriter;
  readonly metrics: ExtenderMetrics;
  readonly log: Logger;
  /** Looks a pod up in the informer cache. */
  readonly podLookup: (namespace: string, name: string) => KubePod | undefined;
  /** How long an assumed placement lives before the informer must have confirmed it. */
  readonly assumeTtlMs?: number;
  readonly now?: () => number;
  /**
   * What filter answers (default 'best'): 'best' is the single best node when kube-scheduler's own scores cannot tell
   * the candidates apart for the pod, else every feasible node; 'all' is every feasible node, always.
   */
  readonly filterAnswers?: 'best' | 'all';
}

const NO_FAILURES = { FailedNodes: {}, FailedAndUnresolvableNodes: {} } as const;

/** A placement bind has reserved in the ledger and is about to write. */
interface Reservation {
  readonly pod: KubePod;
  readonly allocation: Allocation;
  /** The pod's earlier record, put back if the write fails. */
  readonly own: Allocation | undefined;
  readonly placement: Placement;
  readonly tenant: string | null;
}

export class ExtenderScheduler {
  private readonly o: SchedulerOptions;
  private readonly cache = new VerdictCache();
  private readonly locks = new NodeLocks();
  private scoring: ScoringContext = scoringContext();
  private readonly nodeVersions = new Map<string, string>();

  constructor(options: SchedulerOptions) {
    this.o = options;
  }

  private now(): number {
    return this.o.now ? this.o.now() : Date.now();
  }

  setProfile(profile: WorkloadProfile): void {
    this.scoring = scoringContext(profile, this.o.state.capacityByModel());
    this.o.state.version++;
  }

  get scoringContext(): ScoringContext {
    return this.scoring;
  }

  /** Full Node objects (nodeCacheCapable: false) refresh the inventory when they changed. */
  private absorbNodes(nodes: readonly KubeNode[]): string[] {
    return nodes.map((n) => {
      const name = n.metadata?.name ?? '';
      const rv = n.metadata?.resourceVersion ?? '';
      if (!this.o.state.nodes.has(name) || this.nodeVersions.get(name) !== rv || rv === '') {
        this.o.state.upsertNode(n);
        this.nodeVersions.set(name, rv);
      }
      return name;
    });
  }

  private verdicts(args: ExtenderArgs): NodeVerdict[] {
    const names = args.nodeNames ?? this.absorbNodes(args.nodes ?? []);
    const ctx = podContext(this.o.state, args.pod);
    if (!ctx.ok) return names.map((node) => ({ node, feasible: false, score: 0, placement: null, reason: ctx.reason }));
    return evaluateNodes(this.o.state, ctx.pod, names, this.o.strategy, this.scoring, this.cache);
  }

  filter(args: ExtenderArgs): ExtenderFilterResult {
    this.expire();
    const verdicts = this.verdicts(args);
    const feasible: string[] = [];
    const failed: Record<string, string> = {};
    const unresolvable: Record<string, string> = {};
    for (const v of verdicts) {
      if (v.feasible) feasible.push(v.node);
      else if (v.reason) {
        (v.reason.unresolvable ? unresolvable : failed)[v.node] = v.reason.message;
        this.o.metrics.filterReasons.inc({ reason: v.reason.code });
      }
    }
    const pod = args.pod.metadata;
    const best = this.bestAlone(args.pod, verdicts, feasible.length);
    this.o.log.debug(
      {
        pod: `${pod?.namespace}/${pod?.name}`,
        feasible: feasible.length,
        failed: Object.keys(failed).length + Object.keys(unresolvable).length,
        best,
      },
      'filter',
    );
    // With one node kube-scheduler neither scores nor asks prioritize, nor reads why the others failed.
    const kept = best === null ? feasible : [best];
    const failures = best === null ? { FailedNodes: failed, FailedAndUnresolvableNodes: unresolvable } : NO_FAILURES;
    if (args.nodeNames !== null) return { Nodes: null, NodeNames: kept, ...failures, Error: '' };
    const keep = new Set(kept);
    return {
      Nodes: { metadata: {}, items: (args.nodes ?? []).filter((n) => keep.has(n.metadata?.name ?? '')) },
      NodeNames: null,
      ...failures,
      Error: '',
    };
  }

  /**
   * The one feasible node to answer when Tessera's ranking alone decides: its best score (the first of equals, in
   * kube-scheduler's order), when kube-scheduler's own scores would be the same on every node for this pod
   * (core/scheduling/kube-scores.ts). Null to answer every feasible node.
   */
  private bestAlone(pod: KubePod, verdicts: readonly NodeVerdict[], feasible: number): string | null {
    if (feasible < 2 || this.o.filterAnswers === 'all') return null;
    let best: NodeVerdict | null = null;
    const nodes: NodeInventory[] = [];
    for (const v of verdicts) {
      if (!v.feasible) continue;
      if (best === null || v.score > best.score) best = v;
      const node = this.o.state.nodes.get(v.node);
      if (node) nodes.push(node);
    }
    return best !== null && kubeSchedulerPreference(pod, nodes) === null ? best.node : null;
  }

  prioritize(args: ExtenderArgs): HostPriority[] {
    const verdicts = this.verdicts(args);
    const feasible = verdicts.filter((v) => v.feasible);
    const scores = normaliseScores(feasible.map((v) => v.score));
    const byNode = new Map(feasible.map((v, i) => [v.node, scores[i]!]));
    return verdicts.map((v) => ({ Host: v.node, Score: byNode.get(v.node) ?? 0 }));
  }

  /** Drops assumed placements that the informer never confirmed. */
  expire(): void {
    for (const a of this.o.state.expire(this.now())) {
      this.o.metrics.expired.inc();
      this.o.log.warn(
        { pod: `${a.namespace}/${a.name}`, node: a.node },
        'assumed placement expired without the pod being seen bound',
      );
    }
  }

  async bind(args: ExtenderBindingArgs): Promise<{ Error: string }> {
    const { podNamespace: namespace, podName: name, node } = args;
    const where = { pod: `${namespace}/${name}`, node };
    // The decision and the reservation under the node's lock; the API write after it, so that binds to one node (a
    // packing strategy sends several pods in a row) do not queue behind each other's round trips. A later bind to the
    // node already sees this reservation.
    const decided = await this.locks.run(node, () => this.reserve(args, where));
    if ('Error' in decided) return decided;
    const { pod, allocation, own, placement, tenant } = decided;
    const uid = allocation.uid;
    // One write: the Binding carries the assignment (fraction nodes), so the pod is bound with its record or not at
    // all. Device-plugin nodes get a plain Binding; kubelet and the device plugin pick the device.
    const annotations: Record<string, string> = {};
    if (placement.gpus.length > 0) {
      const assignment = { node, gpus: placement.gpus };
      annotations[ASSIGNMENT] = formatAssignment(assignment);
      annotations[VISIBLE_DEVICES] = visibleDevices(assignment);
    }
    try {
      await this.o.writer.bindPod(namespace, name, pod.metadata?.uid ?? uid, node, annotations);
    } catch (e) {
      // Nothing was written: put the ledger back as it was, unless the informer has meanwhile seen the pod bound (a
      // Binding that succeeded but whose answer was lost), whose record then stands.
      if (this.o.state.ledger.get(uid) === allocation) {
        this.o.state.removePod(uid);
        if (own) this.o.state.ledger.add(own);
      }
      this.o.metrics.rollbacks.inc();
      const conflict = e instanceof ConflictError;
      return this.refuse(
        conflict ? 'conflict' : 'error',
        where,
        `${conflict ? 'bind conflict' : 'bind failed'}: ${e instanceof Error ? e.message : String(e)}; reservation dropped`,
      );
    }
    this.o.metrics.binds.inc({ outcome: 'bound' });
    this.o.log.info({ ...where, gpus: placement.gpus, resources: placement.resources, tenant }, 'bound');
    return { Error: '' };
  }

  /** Re-checks the fit and the quota on the freshest state and reserves the placement, or says why not. */
  private async reserve(
    args: ExtenderBindingArgs,
    where: { pod: string; node: string },
  ): Promise<{ Error: string } | Reservation> {
    const { podNamespace: namespace, podName: name, node } = args;
    const pod = await this.podToBind(namespace, name, args.podUID);
    if (!pod) return this.refuse('error', where, `pod ${namespace}/${name} not found`);
    if (pod.metadata?.uid !== args.podUID)
      return this.refuse(
        'conflict',
        where,
        `pod ${namespace}/${name} has UID ${pod.metadata?.uid}, not ${args.podUID}; it was recreated`,
      );
    const ctx = podContext(this.o.state, pod);
    if (!ctx.ok) return this.refuse('unfit', where, ctx.reason.message);
    // From here to assume() nothing awaits: the check and the reservation are one step for every other bind.
    // Re-check without the cache, excluding any earlier record of this very pod.
    const own = this.o.state.ledger.remove(pod.metadata.uid);
    const verdict = evaluateNode(this.o.state, ctx.pod, node, this.o.strategy, this.scoring);
    const quota = verdict.feasible ? quotaReason(this.o.state, ctx.pod, verdict.placement!.gpus) : null;
    if (!verdict.feasible || quota) {
      if (own) this.o.state.ledger.add(own);
      return this.refuse(quota ? 'quota' : 'unfit', where, (quota ?? verdict.reason)!.message);
    }
    const placement = verdict.placement!;
    const policy = this.o.state.policy;
    const allocation = newAllocation({
      pod: ctx.pod.demand,
      tenant: ctx.pod.tenant,
      node,
      holding: placement,
      assumedUntil: this.now() + (this.o.assumeTtlMs ?? 30_000),
      equivalents: policy ? podEquivalents(ctx.pod.demand, policy, placement.gpus) + (ctx.pod.draEquivalents ?? 0) : 0,
      priority: pod.spec?.priority ?? 0,
      pool: ctx.pod.demand.intent.pool,
      vm: ctx.pod.vm ?? null,
    });
    this.o.state.assume(allocation);
    return { pod, allocation, own, placement, tenant: ctx.pod.tenant };
  }

  /** The pod to bind: the informer's copy, or the API's when the informer has none or an older pod of that name. */
  private async podToBind(namespace: string, name: string, uid: string): Promise<KubePod | null> {
    const cached = this.o.podLookup(namespace, name);
    if (cached && cached.metadata?.uid === uid) return cached;
    return (await this.o.writer.readPod(namespace, name)) ?? cached ?? null;
  }

  private refuse(outcome: 'unfit' | 'quota' | 'conflict' | 'error', where: object, message: string): { Error: string } {
    this.o.metrics.binds.inc({ outcome });
    this.o.log.warn({ ...where, outcome, reason: message }, 'bind refused');
    return { Error: message };
  }

  /** Keeps the candidate nodes where evicting the proposed victims really frees a placement for the pod. */
  preempt(args: ExtenderPreemptionArgs): { NodeNameToMetaVictims: Record<string, MetaVictims> } {
    const out: Record<string, MetaVictims> = {};
    const ctx = podContext(this.o.state, args.pod);
    if (!ctx.ok) return { NodeNameToMetaVictims: out };
    const candidates: Record<string, MetaVictims> =
      args.nodeNameToMetaVictims ??
      Object.fromEntries(
        Object.entries(args.nodeNameToVictims ?? {}).map(([node, v]) => [
          node,
          {
            Pods: (v.Pods ?? []).map((p) => ({ UID: p.metadata?.uid ?? '' })),
            NumPDBViolations: v.NumPDBViolations ?? 0,
          },
        ]),
      );
    const preemptor = { ctx: ctx.pod, priority: args.pod.spec?.priority ?? 0 };
    const bound = (node: string) => (a: Allocation) => this.o.podLookup(a.namespace, a.name)?.spec?.nodeName === node;
    for (const [node, proposed] of Object.entries(candidates)) {
      // kube-scheduler proposed victims by node-level resources; replace them with the fewest that free real room.
      const victims = chooseVictims(this.o.state, preemptor, node, bound(node));
      if (victims === null || victims.length === 0) continue;
      // PDBs are kube-scheduler's to count; its figure for the node is the best estimate the extender has.
      out[node] = { Pods: victims.map((v) => ({ UID: v.uid })), NumPDBViolations: proposed.NumPDBViolations ?? 0 };
    }
    return { NodeNameToMetaVictims: out };
  }

  /**
   * Per-pod allocation (chargeback), quotas and pending pods; series of ended pods disappear at the next scrape. A pod
   * counts once the API shows it bound (the informer has seen its binding), not from this replica's own reservation at
   * bind: a Binding that fails is never billed, and the leader bills what a standby and the API see.
   */
  private observePods(): void {
    const m = this.o.metrics;
    m.podAllocated.reset();
    m.tenantQuota.reset();
    m.pending.reset();
    // A VM is billed once, as its quota counts it: by the launcher pod that holds the most (during a live migration
    // the source and the target hold the same devices; core/kubevirt/launcher.ts).
    const vmHolder = new Map<string, { uid: string; equivalents: number }>();
    for (const a of this.o.state.ledger.all()) {
      if (a.vm === null || a.assumedUntil !== null) continue;
      const best = vmHolder.get(a.vm);
      if (!best || a.equivalents > best.equivalents) vmHolder.set(a.vm, { uid: a.uid, equivalents: a.equivalents });
    }
    for (const a of this.o.state.ledger.all()) {
      if (a.equivalents <= 0 || a.assumedUntil !== null) continue;
      if (a.vm !== null && vmHolder.get(a.vm)?.uid !== a.uid) continue;
      const labels = { namespace: a.namespace, pod: a.name, tenant: a.tenant ?? '', pool: a.pool ?? '', node: a.node };
      const milli = a.gpus.reduce((s, g) => s + g.milli, 0);
      if (a.gpus.length === 0 || milli === 0) m.podAllocated.set({ ...labels, gpu: '' }, a.equivalents);
      else
        for (const g of a.gpus)
          m.podAllocated.set({ ...labels, gpu: String(g.index) }, (a.equivalents * g.milli) / milli);
    }
    for (const t of this.o.state.policy?.tenants ?? [])
      if (t.quotaGpus !== null) m.tenantQuota.set({ tenant: t.name }, t.quotaGpus);
    for (const [reason, n] of this.o.state.pendingByReason()) m.pending.set({ reason }, n);
  }

  /** Refreshes the allocation gauges (called at scrape time). */
  observe(): void {
    const m = this.o.metrics;
    m.gpuAllocated.reset();
    m.tenantAllocated.reset();
    this.observePods();
    let free = 0;
    let fragmented = 0;
    for (const node of this.o.state.nodes.values()) {
      if (node.mode !== 'fraction') continue;
      const usage = this.o.state.ledger.usage(node.name);
      const freeMilli = node.gpus.map((g) => 1000 - usage.milliOn(g.index));
      for (const g of node.gpus) m.gpuAllocated.set({ node: node.name, gpu: String(g.index) }, usage.milliOn(g.index));
      free += freeMilli.reduce((a, b) => a + b, 0);
      fragmented += nodeFragmentation(
        this.scoring.profile,
        this.scoring.allowedShapes(node.model),
        freeMilli,
        node.cpuMilli - usage.cpuMilli,
        node.memoryMiB - usage.memoryMiB,
      );
    }
    m.fragmentation.set(free === 0 ? 0 : fragmented / free);
    const tenants = new Set<string>();
    for (const a of this.o.state.ledger.all()) if (a.tenant) tenants.add(a.tenant);
    for (const t of tenants) m.tenantAllocated.set({ tenant: t }, this.o.state.ledger.tenantEquivalents(t));
    m.podProblems.set(this.o.state.problems.size);
    m.nodeProblems.set([...this.o.state.nodes.values()].filter((n) => !n.usable && n.mode !== 'none').length);
  }
}
