// Replays a GPU cluster trace through the core with the FGD paper's protocol (shared/reference/gpu-trace-benchmark.md):
// pods sorted by name and shuffled by seed, tuned to a target share of GPU capacity by resampling with replacement (or
// removing pods), a seed-dependent node order that breaks score ties, no departures, each pod tried once, CPU, memory,
// GPU model and per-GPU milli all enforced. The loop is the scheduler's: fit every node, score the feasible ones, take
// the best, commit to the ledger.

import type { GpuShare } from '../assignment.ts';
import type { PodDemand } from '../demand.ts';
import { fit, OPEN_CONTEXT } from '../fit.ts';
import type { NodeInventory } from '../inventory/node-inventory.ts';
import { newAllocation } from '../allocation.ts';
import { Ledger } from '../ledger.ts';
import { GPU_MILLI } from '../well-known-names.ts';
import { scoringContext } from '../scoring/strategy.ts';
import type { Scored, Strategy } from '../scoring/strategy.ts';
import { typicalShapes, type WorkloadProfile } from '../scoring/workload-profile.ts';
import { SeededRandom } from './random.ts';
import { type SliverDecomposition, sliverDecomposition } from './slivers.ts';
import type { TraceNode, TracePod } from './trace.ts';

export const REPORTED_LOADS = [80, 90, 95, 100, 110, 120, 130] as const;

export interface Decision {
  readonly index: number;
  readonly pod: string;
  readonly node: string | null;
  readonly gpus: readonly GpuShare[];
}

export interface ReplayResult {
  readonly seed: number;
  readonly strategy: string;
  readonly capacityMilli: number;
  readonly arrivals: number;
  readonly failed: number;
  /** Unallocated GPU share (%) at each integer arrived load 0..130, FGD's binning. */
  readonly unallocatedCurve: readonly number[];
  /** unallocatedCurve at REPORTED_LOADS. */
  readonly unallocated: Readonly<Record<string, number>>;
  readonly decisions: readonly Decision[];
  /** Where the free capacity sits when arrived demand first reaches capacity (null if it never does). */
  readonly slivers: SliverDecomposition | null;
}

export interface ReplayOptions {
  readonly seed: number;
  readonly strategy: Strategy;
  /** Arrived GPU demand to reach, as a share of capacity (FGD: 1.3). */
  readonly tune?: number;
  /** Typical pods to measure fragmentation against; by default the trace's own (as in FGD). */
  readonly profile?: WorkloadProfile;
}

export function traceNodeInventory(n: TraceNode): NodeInventory {
  return {
    name: n.name,
    labels: {},
    taints: [],
    unschedulable: false,
    cpuMilli: n.cpuMilli,
    memoryMiB: n.memoryMiB,
    mode: n.gpus > 0 ? 'fraction' : 'none',
    model: n.model === '' ? null : n.model,
    // The trace has no GPU memory: memory 0 means compute-only accounting, as in the paper.
    gpus: Array.from({ length: n.gpus }, (_, index) => ({ index, memoryMiB: 0, numa: null, nvlink: null, mig: [] })),
    replicas: 1,
    gpuResource: n.gpus > 0 ? GPU_MILLI : null,
    resources: {},
    migStrategy: 'none',
    migGeometry: null,
    problems: [],
    warnings: [],
    usable: true,
  };
}

export function tracePodDemand(p: TracePod, uid: string): PodDemand {
  const gpu = p.gpus > 0;
  return {
    uid,
    namespace: 'trace',
    name: p.name,
    cpuMilli: p.cpuMilli,
    memoryMiB: p.memoryMiB,
    gpuResources: gpu ? { [GPU_MILLI]: p.gpus * p.milliPerGpu } : {},
    devices: {},
    fraction: gpu ? { gpus: p.gpus, milliPerGpu: p.milliPerGpu, memoryMiB: null, memoryOnly: false } : null,
    models: p.models,
    topology: null,
    intent: { milli: null, memoryMiB: null, count: null, migProfile: null, pool: null },
  };
}

const podMilli = (p: TracePod): number => p.gpus * p.milliPerGpu;

/** The arrival sequence: sorted by name, shuffled, then tuned to `tune` x capacity (FGD's TunePodsByNodeTotalResource). */
export function arrivalOrder(
  pods: readonly TracePod[],
  capacityMilli: number,
  random: SeededRandom,
  tune: number,
): TracePod[] {
  const sorted = [...pods].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const order = random.shuffle(sorted);
  const target = tune * capacityMilli;
  let total = order.reduce((s, p) => s + podMilli(p), 0);
  if (total < target) {
    for (;;) {
      const draw = sorted.length === 0 ? undefined : pods[random.below(pods.length)];
      if (draw === undefined || total + podMilli(draw) > target) break;
      order.push(draw);
      total += podMilli(draw);
    }
  } else {
    while (total > target && order.length > 0) {
      const [removed] = order.splice(random.below(order.length), 1);
      total -= podMilli(removed!);
    }
  }
  return order;
}

function shapeKey(d: PodDemand): string {
  const f = d.fraction;
  return `${d.cpuMilli}/${d.memoryMiB}/${f?.gpus ?? 0}/${f?.milliPerGpu ?? 0}/${d.models?.join('|') ?? ''}`;
}

interface CachedScore {
  generation: number;
  scored: Scored | null;
}

export interface ArrivalPlan {
  /** GPU nodes in the seed's tie-breaking order. */
  readonly nodes: NodeInventory[];
  readonly capacityMilli: number;
  readonly arrivals: readonly TracePod[];
}

/** The nodes and the pods' arrival sequence for a seed, as the replay and a live run of the same trace both use them. */
export function planArrivals(
  traceNodes: readonly TraceNode[],
  tracePods: readonly TracePod[],
  seed: number,
  tune = 1.3,
): ArrivalPlan {
  const random = new SeededRandom(seed);
  const nodes = traceNodes.filter((n) => n.gpus > 0).map(traceNodeInventory);
  // FGD gives nodes a random prefix, so score ties fall to a seed-dependent but fixed node order.
  random.shuffle(nodes);
  const capacityMilli = nodes.reduce((s, n) => s + n.gpus.length * 1000, 0);
  return { nodes, capacityMilli, arrivals: arrivalOrder(tracePods, capacityMilli, random, tune) };
}

/** How many arrivals it takes for their GPU demand to reach `load` x capacity. */
export function arrivalsUntilLoad(plan: ArrivalPlan, load: number): number {
  let arrived = 0;
  for (let i = 0; i < plan.arrivals.length; i++) {
    if (arrived >= load * plan.capacityMilli) return i;
    arrived += podMilli(plan.arrivals[i]!);
  }
  return plan.arrivals.length;
}

export function replay(
  traceNodes: readonly TraceNode[],
  tracePods: readonly TracePod[],
  options: ReplayOptions,
): ReplayResult {
  const { nodes, capacityMilli, arrivals } = planArrivals(traceNodes, tracePods, options.seed, options.tune ?? 1.3);
  const capacityByModel = new Map<string, number>();
  for (const n of nodes)
    if (n.model !== null) capacityByModel.set(n.model, (capacityByModel.get(n.model) ?? 0) + n.gpus.length);
  const profile =
    options.profile ??
    typicalShapes(
      tracePods.map((p) => ({
        cpuMilli: p.cpuMilli,
        memoryMiB: p.memoryMiB,
        gpus: p.gpus,
        milliPerGpu: p.milliPerGpu,
        models: p.models,
      })),
    );
  const context = scoringContext(profile, capacityByModel);
  const ledger = new Ledger();
  // The ledger keeps one usage object per node for good, so the hot loop can index them.
  const usages = nodes.map((n) => ledger.usage(n.name));
  const caches: Map<string, CachedScore>[] = nodes.map(() => new Map());
  const decisions: Decision[] = [];
  const bins: { sum: number; n: number }[] = Array.from({ length: 131 }, () => ({ sum: 0, n: 0 }));
  let arrived = 0;
  let allocated = 0;
  let failed = 0;
  let slivers: SliverDecomposition | null = null;

  arrivals.forEach((pod, index) => {
    const demand = tracePodDemand(pod, `pod-${index}`);
    const key = shapeKey(demand);
    let best: Scored | null = null;
    let bestNode = -1;
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i]!;
      const usage = usages[i]!;
      const cache = caches[i]!;
      let entry = cache.get(key);
      if (entry === undefined || entry.generation !== usage.generation) {
        const result = fit(node, usage, demand, OPEN_CONTEXT);
        const scored = result.ok
          ? options.strategy.choose({ node, usage, demand, placements: result.placements, context })
          : null;
        entry = { generation: usage.generation, scored };
        cache.set(key, entry);
      }
      if (entry.scored !== null && (best === null || entry.scored.score > best.score)) {
        best = entry.scored;
        bestNode = i;
      }
    }
    arrived += podMilli(pod);
    if (best === null) {
      failed++;
      decisions.push({ index, pod: pod.name, node: null, gpus: [] });
    } else {
      const node = nodes[bestNode]!;
      ledger.add(newAllocation({ pod: demand, tenant: null, node: node.name, holding: best.placement }));
      allocated += best.placement.gpus.reduce((s, g) => s + g.milli, 0);
      decisions.push({ index, pod: pod.name, node: node.name, gpus: best.placement.gpus });
    }
    if (slivers === null && arrived >= capacityMilli) slivers = sliverDecomposition(nodes, usages, profile);
    const bin = Math.round((arrived / capacityMilli) * 100);
    if (bin <= 130) {
      bins[bin]!.sum += (allocated / capacityMilli) * 100;
      bins[bin]!.n++;
    }
  });

  // FGD's binning: the mean of the points in each integer bin, an empty bin borrows a neighbour (±1); bins further
  // from any point (small traces) hold the last state reached, since allocation only changes at arrivals.
  const allocation = bins.map((b) => (b.n === 0 ? null : b.sum / b.n));
  let last = 0;
  const curve = allocation.map((v, k) => {
    const value = v ?? allocation[k - 1] ?? allocation[k + 1] ?? last;
    if (v !== null) last = v;
    return 100 - value;
  });
  const unallocated: Record<string, number> = {};
  for (const load of REPORTED_LOADS) unallocated[String(load)] = curve[load]!;
  return {
    seed: options.seed,
    strategy: options.strategy.name,
    capacityMilli,
    arrivals: arrivals.length,
    failed,
    unallocatedCurve: curve,
    unallocated,
    decisions,
    slivers,
  };
}
