// What one pod holds on one node: the ledger's entry. Bind, the rebuild from the API, the simulator and the tests all
// build it with newAllocation, so that its fields are filled in one way.

import type { GpuShare } from './assignment.ts';
import type { PodDemand } from './demand.ts';

export interface Allocation {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly tenant: string | null;
  readonly node: string;
  readonly cpuMilli: number;
  readonly memoryMiB: number;
  /** Device-plugin GPU resources the pod holds (nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-*). */
  readonly resources: Readonly<Record<string, number>>;
  /** GPUs on a fraction node, with the compute and memory reserved on each. */
  readonly gpus: readonly GpuShare[];
  /** Whether the pod shares a physical GPU with others (a fraction below a whole GPU, or a time-slice/MPS replica). */
  readonly sharing: boolean;
  /** Expiry of an assumed reservation; null once the pod is seen bound. */
  readonly assumedUntil: number | null;
  /** GPU-equivalents the pod holds against its tenant's quota (0 without a policy). */
  readonly equivalents: number;
  /** The pod's spec.priority: preemption takes victims below the preemptor's. */
  readonly priority: number;
  /** The Tessera pool the pod was admitted to (tessera.io/pool), for chargeback; null outside pools. */
  readonly pool: string | null;
  /** The KubeVirt VM of a launcher pod (`namespace/VMI uid`): its launcher pods count once against quota. */
  readonly vm: string | null;
}

/** What a placement reserves: fraction GPUs, or device-plugin resources, and whether a GPU is shared. */
export interface Holding {
  readonly resources: Readonly<Record<string, number>>;
  readonly gpus: readonly GpuShare[];
  readonly sharing: boolean;
}

export interface AllocationSpec {
  /** The pod's identity and its CPU and memory requests (a PodDemand fits). */
  readonly pod: Pick<PodDemand, 'uid' | 'namespace' | 'name' | 'cpuMilli' | 'memoryMiB'>;
  readonly tenant: string | null;
  readonly node: string;
  readonly holding: Holding;
  readonly equivalents?: number;
  /** Set for a reservation made at bind and not yet seen bound. */
  readonly assumedUntil?: number | null;
  readonly priority?: number;
  readonly pool?: string | null;
  readonly vm?: string | null;
}

export function newAllocation(spec: AllocationSpec): Allocation {
  const { pod, holding } = spec;
  return {
    uid: pod.uid,
    namespace: pod.namespace,
    name: pod.name,
    tenant: spec.tenant,
    node: spec.node,
    cpuMilli: pod.cpuMilli,
    memoryMiB: pod.memoryMiB,
    resources: holding.resources,
    gpus: holding.gpus,
    sharing: holding.sharing,
    assumedUntil: spec.assumedUntil ?? null,
    equivalents: spec.equivalents ?? 0,
    priority: spec.priority ?? 0,
    pool: spec.pool ?? null,
    vm: spec.vm ?? null,
  };
}
