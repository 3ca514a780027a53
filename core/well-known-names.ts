// The user-facing names of DESIGN.md ("the contract"), in one place so that no module spells them differently.

export const TENANT_LABEL = 'tessera.io/tenant';
export const SHARING_LABEL = 'tessera.io/sharing';
export const POOL_ANNOTATION = 'tessera.io/pool';

export const GPU_FRACTION = 'tessera.io/gpu-fraction';
export const GPU_MEMORY = 'tessera.io/gpu-memory';
export const GPU_COUNT = 'tessera.io/gpu-count';
export const MIG_PROFILE = 'tessera.io/mig-profile';
export const GPU_MODEL = 'tessera.io/gpu-model';
export const TOPOLOGY = 'tessera.io/topology';
export const GPU_TOPOLOGY = 'tessera.io/gpu-topology';

export const ASSIGNMENT = 'tessera.io/assignment';
export const VISIBLE_DEVICES = 'tessera.io/visible-devices';
export const POLICY_REVISION = 'tessera.io/policy-revision';
export const SYSTEM_OWNED_ANNOTATIONS: readonly string[] = [ASSIGNMENT, VISIBLE_DEVICES, POLICY_REVISION];

export const GPU_MILLI = 'tessera.io/gpu-milli';

/** Node labels the node agent sets on its node (docs/node-agent.md). */
export const NODE_AGENT_LABEL = 'tessera.io/node-agent';
/** Value of NODE_AGENT_LABEL: the agent advertises tessera.io/gpu-milli here, so the extender does not. */
export const NODE_AGENT_SERVING = 'serving';
export const GPU_ENFORCEMENT_LABEL = 'tessera.io/gpu-enforcement';
export const GPU_DELIVERY_LABEL = 'tessera.io/gpu-delivery';
/** Pod annotation the webhook writes on pools whose policy fixes `delivery.mode`: the node agent answers that way. */
export const GPU_DELIVERY_ANNOTATION = 'tessera.io/gpu-delivery';
export const NVIDIA_GPU = 'nvidia.com/gpu';
export const NVIDIA_GPU_SHARED = 'nvidia.com/gpu.shared';
export const NVIDIA_MIG_PREFIX = 'nvidia.com/mig-';
export const DEFAULT_SCHEDULER_NAME = 'tessera-scheduler';

/** GFD labels (NVIDIA/k8s-device-plugin, gpu-feature-discovery). */
export const GFD = {
  product: 'nvidia.com/gpu.product',
  count: 'nvidia.com/gpu.count',
  memory: 'nvidia.com/gpu.memory',
  replicas: 'nvidia.com/gpu.replicas',
  sharingStrategy: 'nvidia.com/gpu.sharing-strategy',
  migStrategy: 'nvidia.com/mig.strategy',
  migCapable: 'nvidia.com/mig.capable',
  migConfigState: 'nvidia.com/mig.config.state',
} as const;

/** Extended resources that carry GPU demand: the ones the extender manages. */
export function isGpuResource(name: string): boolean {
  return name === GPU_MILLI || name === NVIDIA_GPU || name === NVIDIA_GPU_SHARED || name.startsWith(NVIDIA_MIG_PREFIX);
}
