// The openb trace as Kubernetes objects for the live packing benchmark (live.bench.ts), and what to compare it with:
// fraction-mode GPU nodes as GFD and Tessera's capacity controller would publish them, pods as the webhook would leave
// them (pre-mutated), the scheduler configuration that manifests/base/scheduler.yaml ships (with the benchmark's
// knobs), and the simulator's figure for exactly the same arrivals. Pure apart from reading the manifest.

import type { V1Pod } from '@kubernetes/client-node';
import { parseAssignment } from '../../core/assignment.ts';
import type { KubePod } from '../../core/kube-objects.ts';
import { arrivalsUntilLoad, planArrivals, replay, type ArrivalPlan } from '../../core/simulation/replay.ts';
import type { TraceNode, TracePod } from '../../core/simulation/trace.ts';
import type { Strategy } from '../../core/scoring/strategy.ts';
import { ASSIGNMENT, GFD, GPU_MILLI, GPU_MODEL, SHARING_LABEL } from '../../core/well-known-names.ts';
import { localSchedulerConfig, type SchedulerConfig, schedulerConfigYaml } from '../controlplane/scheduler-config.ts';
import type { FakeNode } from '../e2e/stack.ts';

export const SCHEDULER_NAME = 'tessera-scheduler';
export const NAMESPACE = 'trace';
/**
 * The extender learns its typical pods (the workload profile its fragmentation term scores against) from the pods in
 * the cluster, refreshed every minute; the simulator knows the trace's from the start. To compare scheduling rather
 * than learning, a warm run first creates a copy of the arrivals here under a scheduler name that nothing serves: they
 * stay Pending, hold nothing, and the extender counts their shapes (the same ones, so the profile is the same).
 */
export const PROFILE_NAMESPACE = 'trace-profile';
export const PROFILE_SCHEDULER = 'tessera-bench-profile-only';
/** The trace has no GPU memory; any consistent value works, since a fraction reserves the same share of memory. */
export const GPU_MEMORY_MIB = '16384';
/** The simulator has no pod-count limit; this is far above what any node receives. */
export const PODS_PER_NODE = '10000';

/** The scope of one run: the seed's node order (optionally its first N nodes), and the arrivals up to 100 % load. */
export interface LiveScope {
  readonly seed: number;
  /** The trace nodes in the run: the trace's GPU nodes as listed, or the first N in the seed's order. */
  readonly nodes: readonly TraceNode[];
  readonly plan: ArrivalPlan;
  /** Arrivals submitted: those until their GPU demand reaches 100 % of the nodes' capacity. */
  readonly arrivals: readonly TracePod[];
}

export function liveScope(
  traceNodes: readonly TraceNode[],
  tracePods: readonly TracePod[],
  seed: number,
  nodeLimit: number | null,
): LiveScope {
  const gpuNodes = traceNodes.filter((n) => n.gpus > 0);
  let nodes = gpuNodes;
  if (nodeLimit !== null) {
    // For a subset, the subset is the cluster: its own node order and arrivals tuned to its capacity, as replay sees it.
    const byName = new Map(gpuNodes.map((n) => [n.name, n]));
    nodes = planArrivals(gpuNodes, tracePods, seed)
      .nodes.slice(0, nodeLimit)
      .map((n) => byName.get(n.name)!);
  }
  // The same call replay makes, so that the arrivals and the node order are the simulator's.
  const plan = planArrivals(nodes, tracePods, seed);
  const count = arrivalsUntilLoad(plan, 1.0);
  return { seed, nodes, plan, arrivals: plan.arrivals.slice(0, count) };
}

export interface SimulatedFigures {
  /** Unallocated GPU % after exactly the submitted arrivals, from replay's decisions. */
  readonly sameArrivals: number;
  readonly failed: number;
  /** `tessera simulate`'s figure: FGD's binned curve at 100 % arrived load. */
  readonly binned100: number;
  readonly seconds: number;
}

export function simulatedFigures(
  scope: LiveScope,
  tracePods: readonly TracePod[],
  strategy: Strategy,
): SimulatedFigures {
  const started = performance.now();
  const result = replay(scope.nodes, tracePods, { seed: scope.seed, strategy });
  let allocated = 0;
  let failed = 0;
  for (const d of result.decisions.slice(0, scope.arrivals.length)) {
    if (d.node === null) failed++;
    for (const g of d.gpus) allocated += g.milli;
  }
  return {
    sameArrivals: 100 - (allocated / scope.plan.capacityMilli) * 100,
    failed,
    binned100: result.unallocated['100']!,
    seconds: (performance.now() - started) / 1000,
  };
}

/** A fraction node as GFD labels it and Tessera's capacity controller advertises it, with the trace's CPU and memory. */
export function traceNode(n: TraceNode): { node: FakeNode; resources: Record<string, string> } {
  return {
    node: {
      metadata: {
        name: n.name,
        labels: {
          [SHARING_LABEL]: 'fraction',
          [GFD.product]: n.model,
          [GFD.count]: String(n.gpus),
          [GFD.memory]: GPU_MEMORY_MIB,
        },
      },
    },
    resources: {
      cpu: `${n.cpuMilli}m`,
      memory: `${n.memoryMiB}Mi`,
      pods: PODS_PER_NODE,
      [GPU_MILLI]: String(n.gpus * 1000),
    },
  };
}

/** Zero-padded, so that listings sort in arrival order. */
export const podName = (index: number): string => `p-${String(index).padStart(6, '0')}`;

/**
 * A trace pod as the webhook leaves it: Tessera's scheduler, CPU and memory requests, `tessera.io/gpu-milli` as a
 * limit (gpus x milli: a share of one GPU, or whole GPUs), and GPU-model constraints as the model annotation plus the
 * required node affinity the webhook adds.
 */
export function tracePod(p: TracePod, index: number, schedulerName = SCHEDULER_NAME): V1Pod {
  if (p.gpus > 1 && p.milliPerGpu !== 1000)
    throw new Error(`trace pod ${p.name}: ${p.gpus} GPUs of ${p.milliPerGpu} milli each cannot be asked for`);
  const models = p.models === null ? null : [...new Set(p.models)];
  return {
    metadata: {
      name: podName(index),
      labels: { 'trace.tessera.io/pod': p.name },
      ...(models ? { annotations: { [GPU_MODEL]: models.join('|') } } : {}),
    },
    spec: {
      schedulerName,
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 0,
      containers: [
        {
          name: 'main',
          image: 'registry.example/trace:1',
          resources: {
            requests: { cpu: `${p.cpuMilli}m`, memory: `${p.memoryMiB}Mi` },
            ...(p.gpus > 0 ? { limits: { [GPU_MILLI]: String(p.gpus * p.milliPerGpu) } } : {}),
          },
        },
      ],
      ...(models
        ? {
            affinity: {
              nodeAffinity: {
                requiredDuringSchedulingIgnoredDuringExecution: {
                  nodeSelectorTerms: [{ matchExpressions: [{ key: GFD.product, operator: 'In', values: models }] }],
                },
              },
            },
          }
        : {}),
    },
  };
}

/** GPU milli a pod holds according to its assignment (0 for CPU-only or unbound pods); throws on a bad record. */
export function assignedMilli(pod: KubePod): number {
  const text = pod.metadata?.annotations?.[ASSIGNMENT];
  if (!pod.spec?.nodeName || text === undefined) return 0;
  const a = parseAssignment(text);
  if (typeof a === 'string') throw new Error(`pod ${pod.metadata?.name}: ${a}`);
  return a.gpus.reduce((s, g) => s + g.milli, 0);
}

/** The benchmark's knobs over the scheduler configuration that the manifests ship; undefined keeps what ships. */
export interface SchedulerKnobs {
  /** percentageOfNodesToScore; 0 is kube-scheduler's adaptive default. */
  readonly percentage?: number;
  readonly parallelism?: number;
  /** The extender's prioritize weight. */
  readonly weight?: number;
  /** kube-scheduler's resource scores (NodeResourcesFit, NodeResourcesBalancedAllocation): 'on' enables both with
   * NodeResourcesFit as MostAllocated on CPU and memory (the earlier shipped profile), 'off' disables them. */
  readonly resourceScores?: 'on' | 'off';
  /** 'extender': no managedResources, so kube-scheduler asks the extender about every pod, CPU-only ones too;
   * 'kube': managedResources lists the GPU resources, so CPU-only pods are placed by kube-scheduler alone. */
  readonly cpuPods?: 'extender' | 'kube';
  /** The extender's httpTimeout (a Go duration): kube-scheduler gives up on a call after it and retries the pod. */
  readonly httpTimeout?: string;
}

const MANAGED = [
  GPU_MILLI,
  'nvidia.com/gpu',
  'nvidia.com/gpu.shared',
  ...['1g.10gb', '1g.20gb', '2g.20gb', '3g.40gb', '4g.40gb', '7g.80gb'].map((p) => `nvidia.com/mig-${p}`),
];

/**
 * The shipped configuration, pointed at a local extender over plain HTTP (the harness fills in the client connection
 * and turns leader election off), with the knobs applied. Returns the YAML and what it came to, for the report.
 */
export function benchSchedulerConfig(
  shipped: SchedulerConfig,
  extenderPort: number,
  knobs: SchedulerKnobs,
): { yaml: string; effective: Record<string, string> } {
  const config = localSchedulerConfig(extenderPort, {}, shipped);
  if (knobs.percentage !== undefined) {
    if (knobs.percentage === 0) delete config.percentageOfNodesToScore;
    else config.percentageOfNodesToScore = knobs.percentage;
  }
  if (knobs.parallelism !== undefined) config.parallelism = knobs.parallelism;
  const profile = config.profiles?.find((p) => p.schedulerName === SCHEDULER_NAME);
  if (!profile) throw new Error(`the shipped configuration has no ${SCHEDULER_NAME} profile`);
  if (knobs.resourceScores !== undefined) {
    const plugins = (profile.plugins ?? {}) as Record<string, { enabled?: unknown[]; disabled?: { name: string }[] }>;
    const score = plugins.score ?? {};
    const resource = new Set(['NodeResourcesFit', 'NodeResourcesBalancedAllocation']);
    const others = (score.disabled ?? []).filter((d) => !resource.has(d.name));
    score.disabled = knobs.resourceScores === 'off' ? [...others, ...[...resource].map((name) => ({ name }))] : others;
    if (score.disabled.length === 0) delete score.disabled;
    plugins.score = score;
    if (Object.keys(score).length === 0) delete plugins.score;
    profile.plugins = plugins;
    if (Object.keys(plugins).length === 0) delete profile.plugins;
    const pluginConfig = ((profile.pluginConfig ?? []) as { name: string }[]).filter(
      (c) => c.name !== 'NodeResourcesFit',
    );
    if (knobs.resourceScores === 'on')
      pluginConfig.push({
        name: 'NodeResourcesFit',
        args: {
          scoringStrategy: {
            type: 'MostAllocated',
            resources: [
              { name: 'cpu', weight: 1 },
              { name: 'memory', weight: 1 },
            ],
          },
        },
      } as { name: string });
    if (pluginConfig.length > 0) profile.pluginConfig = pluginConfig;
    else delete profile.pluginConfig;
  }
  const extender = config.extenders![0]!;
  if (knobs.weight !== undefined) extender.weight = knobs.weight;
  if (knobs.httpTimeout !== undefined) extender.httpTimeout = knobs.httpTimeout;
  if (knobs.cpuPods === 'extender') delete extender.managedResources;
  if (knobs.cpuPods === 'kube')
    extender.managedResources = MANAGED.map((name) => ({ name, ignoredByScheduler: false }));

  const disabledScores = ((profile.plugins as { score?: { disabled?: { name: string }[] } } | undefined)?.score
    ?.disabled ?? []) as { name: string }[];
  const fitConfig = (
    (profile.pluginConfig ?? []) as { name: string; args?: { scoringStrategy?: { type?: string } } }[]
  ).find((c) => c.name === 'NodeResourcesFit')?.args?.scoringStrategy?.type;
  const resourceScoresOff = disabledScores.some((d) => d.name === 'NodeResourcesFit' || d.name === '*');
  return {
    yaml: schedulerConfigYaml(config),
    effective: {
      percentageOfNodesToScore: String(config.percentageOfNodesToScore ?? 'adaptive'),
      parallelism: String(config.parallelism ?? 16),
      'extender weight': String(extender.weight ?? 1),
      'extender httpTimeout': String(extender.httpTimeout ?? '30s'),
      'resource scores': resourceScoresOff ? 'off' : `on (${fitConfig ?? 'LeastAllocated'})`,
      'CPU-only pods': extender.managedResources === undefined ? 'extender' : 'kube-scheduler alone',
    },
  };
}
