// The compiled policy: what the webhook, the extender and the CLI evaluate. Built only by compilePolicy, after the
// schema and the semantic checks have passed, so every field here is valid.

import type { AcceleratorNames } from '../accelerators/resource-names.ts';
import type { Taint } from '../kube-objects.ts';
import type { DeliveryMode, EnforcementKind } from '../node-agent/delivery.ts';

export type FractionMode = 'fraction' | 'mig' | 'time-slicing' | 'mps' | 'none' | 'dra' | 'passthrough' | 'vgpu';
export type Action = 'enforce' | 'warn' | 'audit';

export interface Pool {
  readonly name: string;
  readonly nodeSelector: Readonly<Record<string, string>>;
  readonly taint: Taint | null;
  readonly fractionMode: FractionMode;
  /** Canonical GPU model of a MIG pool (and an optional model constraint elsewhere). */
  readonly gpuModel: string | null;
  /** The device-plugin resource a time-slicing or MPS replica is requested as. */
  readonly resource: string;
  readonly replicas: number | null;
  /** The DeviceClasses a dra pool's claims may name (empty for the other modes). */
  readonly deviceClasses: readonly string[];
  /** The device-plugin resources a passthrough or vgpu pool serves (empty for the other modes). */
  readonly deviceResources: readonly DeviceResource[];
  /** How a fraction pool's GPUs reach containers: through Tessera's node agent, or null for the downward API. */
  readonly delivery: PoolDelivery | null;
}

/** One device a pool serves: `perGpu` of them make one physical GPU, so each is 1/perGpu GPU-equivalents. */
export interface DeviceResource {
  readonly resource: string;
  readonly perGpu: number;
}

/** A fraction pool served by Tessera's node agent (policy `delivery`). */
export interface PoolDelivery {
  /** The agent's delivery mode on the pool's nodes; `auto` lets each node pick from what it shows. */
  readonly mode: DeliveryMode | 'auto';
  /** Enforcement the pool's nodes must report (`any`: hami-core or mps), or null when none is required. */
  readonly enforcement: Exclude<EnforcementKind, 'none'> | 'any' | null;
}

export interface Tenant {
  readonly name: string;
  readonly pools: readonly string[];
  /** GPU-equivalents over the tenant's non-terminated pods, or null for no quota. */
  readonly quotaGpus: number | null;
  readonly maxGpusPerPod: number | null;
  /** Priority classes the tenant's pods may name; null allows any. */
  readonly priorityClasses: readonly string[] | null;
  readonly shareGpuWith: 'any' | 'same-tenant';
  /** Other tenants whose lower-priority pods this tenant's pods may preempt ('*': any, and pods outside tenants). */
  readonly mayPreempt: readonly string[];
}

export interface RuleMatch {
  readonly tenants: readonly string[] | null;
  readonly namespaces: readonly string[] | null;
}

interface RuleBase {
  readonly name: string;
  readonly action: Action;
  readonly match: RuleMatch;
  /** The policy file the rule came from. */
  readonly source: string;
}

export type Rule =
  | (RuleBase & {
      readonly kind: 'GpuRequest';
      readonly minMilli: number | null;
      readonly maxMemoryMiB: number | null;
      readonly requireLimits: boolean;
    })
  | (RuleBase & { readonly kind: 'GpuBypass' })
  | (RuleBase & { readonly kind: 'ImageRegistry'; readonly allowed: readonly string[] })
  | (RuleBase & {
      readonly kind: 'RequiredLabels';
      readonly labels: readonly { readonly key: string; readonly pattern: RegExp; readonly source: string }[];
    })
  | (RuleBase & {
      readonly kind: 'ImmutableFields';
      readonly annotations: readonly string[];
      readonly labels: readonly string[];
    })
  | (RuleBase & { readonly kind: 'RuntimeClass'; readonly gpuPods: string });

export type RuleKind = Rule['kind'];

export interface Policy {
  /** metadata.name of each file, joined. */
  readonly name: string;
  /** Content hash of all files: stamped on admitted pods as tessera.io/policy-revision. */
  readonly revision: string;
  readonly schedulerName: string;
  readonly admins: { readonly groups: readonly string[]; readonly users: readonly string[] };
  readonly pools: readonly Pool[];
  readonly tenants: readonly Tenant[];
  readonly rules: readonly Rule[];
  readonly sources: readonly string[];
  /** Which extended resources are accelerators beyond Tessera's own GPU names (built-in list, widened by policy). */
  readonly accelerators: AcceleratorNames;
}

export function poolNamed(policy: Policy, name: string): Pool | undefined {
  return policy.pools.find((p) => p.name === name);
}

export function tenantNamed(policy: Policy, name: string): Tenant | undefined {
  return policy.tenants.find((t) => t.name === name);
}

/** Tenants whose pods never share a GPU or a time-sliced node with another tenant's. */
export function isolatedTenants(policy: Policy): Set<string> {
  return new Set(policy.tenants.filter((t) => t.shareGpuWith === 'same-tenant').map((t) => t.name));
}

export function ruleApplies(rule: Rule, tenant: string | null, namespace: string): boolean {
  if (rule.match.tenants !== null && (tenant === null || !rule.match.tenants.includes(tenant))) return false;
  if (rule.match.namespaces !== null && !rule.match.namespaces.includes(namespace)) return false;
  return true;
}
