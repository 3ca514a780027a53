// What every validation check receives, and what it returns. A check is a pure function; the pipeline runs all of
// them and reports every violation, in a fixed order (kueue's field.ErrorList habit), not just the first.

import type { DemandError, PodDemand } from '../demand.ts';
import type { KubePod } from '../kube-objects.ts';
import type { Action, Policy, Tenant } from '../policy/model.ts';
import type { ClusterView } from './cluster-view.ts';
import type { GpuDecision } from '../pools/gpu-decision.ts';
import type { UserInfo } from './request.ts';
import type { PodDra } from '../dra/pod-claims.ts';

export interface Violation {
  /** The policy rule's name, or a built-in name (tessera/...). */
  readonly rule: string;
  readonly action: Action;
  /** What is wrong and how to fix it. */
  readonly message: string;
}

export interface PodSubject {
  readonly pod: KubePod;
  /** The object before an UPDATE; null on CREATE and for templates. */
  readonly old: KubePod | null;
  readonly namespace: string;
  readonly tenantName: string | null;
  readonly tenant: Tenant | undefined;
  readonly demand: PodDemand | DemandError;
  readonly gpu: boolean;
  readonly decision: GpuDecision | null;
  /** Where in the reviewed object the pod spec is, for messages ("" for a pod, "spec.template: " for a Deployment). */
  readonly where: string;
  /** A workload template, not a pod: quota and UPDATE guards do not apply. */
  readonly template: boolean;
  /** What the pod claims through DRA (claims, DRA-backed extended resources). */
  readonly dra?: PodDra;
}

export interface CheckContext {
  readonly policy: Policy;
  readonly view: ClusterView;
  readonly user: UserInfo;
  readonly operation: 'CREATE' | 'UPDATE';
  /** The requester is one of Tessera's own service accounts. */
  readonly system: boolean;
  /** The requester may change tenants and system-owned names (policy admins). */
  readonly admin: boolean;
  /** The requester is KubeVirt's virt-controller (AdmissionConfig.kubevirtUsers). */
  readonly kubevirt?: boolean;
  /** Revisions served just before the current one (see AdmissionConfig). */
  readonly recentRevisions: ReadonlySet<string>;
}

export type PodCheck = (subject: PodSubject, ctx: CheckContext) => Violation[];

export const BUILTIN = {
  tenancy: 'tessera/tenancy',
  request: 'tessera/gpu-request',
  accounting: 'tessera/accounting',
  systemOwned: 'tessera/system-owned',
  quota: 'tessera/quota',
  accelerators: 'tessera/accelerators',
  kubevirt: 'tessera/kubevirt',
} as const;
