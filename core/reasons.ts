// Stable reason codes for why a pod does not fit a node. Codes are a contract (metrics, explain output, alerts);
// messages are for people. `unresolvable` reasons cannot be cured by preempting pods on that node.

export const REASONS = {
  NodeUnusable: { unresolvable: true, summary: 'the node’s GPU labels are missing or contradictory' },
  NoGpus: { unresolvable: true, summary: 'the node has no GPUs' },
  ModeMismatch: { unresolvable: true, summary: 'the node does not offer the kind of GPU the pod asks for' },
  ModelMismatch: { unresolvable: true, summary: 'the node’s GPU model is not one the pod allows' },
  MigProfileAbsent: { unresolvable: true, summary: 'the node has no MIG instances of the requested profile' },
  MigProfileExhausted: { unresolvable: false, summary: 'every MIG instance of the requested profile is taken' },
  ReplicasExhausted: { unresolvable: false, summary: 'every time-slice/MPS replica is taken' },
  GpusExhausted: { unresolvable: false, summary: 'not enough free whole GPUs' },
  TooManyGpus: { unresolvable: true, summary: 'the pod asks for more GPUs than the node has' },
  GpuCompute: { unresolvable: false, summary: 'no GPU has enough free compute' },
  GpuMemory: { unresolvable: false, summary: 'no GPU has enough free memory' },
  GpuMemoryTooLarge: { unresolvable: true, summary: 'the pod asks for more GPU memory than one GPU has' },
  TopologyUnsatisfiable: { unresolvable: false, summary: 'no set of free GPUs meets the topology requirement' },
  TopologyImpossible: { unresolvable: true, summary: 'the node has no NVLink island or NUMA node large enough' },
  TenantIsolation: {
    unresolvable: false,
    summary: 'the only room is on GPUs shared with another tenant, and GPU sharing across these tenants is not allowed',
  },
  InsufficientCpu: { unresolvable: false, summary: 'not enough CPU' },
  InsufficientMemory: { unresolvable: false, summary: 'not enough memory' },
  NodeNotInPool: { unresolvable: true, summary: 'the node is outside the pools the pod’s tenant may use' },
  NodeAgentMissing: {
    unresolvable: true,
    summary: 'the pod’s pool delivers GPUs through Tessera’s node agent, which does not serve this node',
  },
  EnforcementMissing: {
    unresolvable: true,
    summary: 'the pod’s pool requires GPU share enforcement that this node does not report',
  },
  ClaimElsewhere: { unresolvable: true, summary: 'a ResourceClaim the pod uses is allocated on another node' },
  QuotaExceeded: { unresolvable: true, summary: 'the tenant’s GPU quota would be exceeded' },
  UnknownNode: { unresolvable: true, summary: 'the extender has not seen this node' },
  InvalidRequest: { unresolvable: true, summary: 'the pod’s GPU request is malformed' },
} as const;

export type ReasonCode = keyof typeof REASONS;

export interface Reason {
  readonly code: ReasonCode;
  readonly message: string;
  readonly unresolvable: boolean;
}

export function reason(code: ReasonCode, detail: string): Reason {
  return { code, message: `${code}: ${detail}`, unresolvable: REASONS[code].unresolvable };
}
