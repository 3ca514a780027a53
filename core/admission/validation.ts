// The validating stage, pure: an AdmissionRequest, the policy, a view of the cluster and the identities of Tessera's own
// service accounts in; a verdict (allowed, and every violation with its rule and action) out. Pods, Bindings of pods,
// Namespaces and the pod templates of workloads are checked; an UPDATE is judged by the findings it adds.

import { DemandError, parseDemand, wantsGpu } from '../demand.ts';
import type { KubeNamespace, KubePod } from '../kube-objects.ts';
import { tenantNamed, type Policy } from '../policy/model.ts';
import { decidePodGpu, withoutDraExtended } from '../dra/decision.ts';
import { NO_DRA } from '../dra/lookup.ts';
import { readPodDra } from '../dra/pod-claims.ts';
import { BUILTIN, type CheckContext, type PodSubject, type Violation } from './check.ts';
import { tenantOfNamespace, type ClusterView } from './cluster-view.ts';
import type { AdmissionRequest, UserInfo } from './request.ts';
import { accountingCheck } from './rules/accounting.ts';
import { adminAccessLabelViolations } from './rules/admin-access.ts';
import { bindingTarget, bindingViolations, isBindingRequest, type KubeBinding } from './rules/binding.ts';
import { claimObjectViolations, claimsCheck } from './rules/claims.ts';
import { namespaceViolations } from './rules/namespace.ts';
import { policyRuleViolations } from './rules/policy-rules.ts';
import { quotaCheck, quotaNeedOf, type QuotaNeed } from './rules/quota.ts';
import { systemOwnedCheck } from './rules/system-owned.ts';
import { tenancyCheck } from './rules/tenancy.ts';
import { acceleratorsCheck } from './rules/accelerators.ts';
import { fractionWithoutDevice, launcherCheck } from './rules/launcher.ts';
import { KUBEVIRT_CONTROLLER_USERS } from '../kubevirt/launcher.ts';
import { isVmKind, KUBEVIRT_GROUP, launcherPodOf, vmiView } from '../kubevirt/vm-objects.ts';

export interface AdmissionConfig {
  /** Usernames of Tessera's own service accounts (system:serviceaccount:<ns>:<name>). */
  readonly systemUsers: readonly string[];
  /**
   * Policy revisions served just before the current one: a pod stamped by the mutating call under the previous
   * revision, validated after a hot reload, is not a forgery.
   */
  readonly recentRevisions?: ReadonlySet<string>;
  /** Usernames KubeVirt's virt-controller creates launcher pods as (default: KUBEVIRT_CONTROLLER_USERS). */
  readonly kubevirtUsers?: readonly string[];
}

/** Pod template locations of the workload kinds checked at their own admission. */
const TEMPLATES: Readonly<Record<string, readonly string[]>> = {
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export interface Verdict {
  readonly allowed: boolean;
  readonly violations: readonly Violation[];
  /** A pod CREATE that counts against its tenant's quota: what the webhook must reserve before admitting it. */
  readonly quota?: QuotaNeed;
}

function isAdmin(user: UserInfo, policy: Policy): boolean {
  if (user.username !== undefined && policy.admins.users.includes(user.username)) return true;
  return (user.groups ?? []).some((g) => policy.admins.groups.includes(g));
}

function context(req: AdmissionRequest, policy: Policy, view: ClusterView, config: AdmissionConfig): CheckContext {
  const user = req.userInfo ?? {};
  return {
    policy,
    view,
    user,
    operation: req.operation === 'UPDATE' ? 'UPDATE' : 'CREATE',
    system: user.username !== undefined && config.systemUsers.includes(user.username),
    recentRevisions: config.recentRevisions ?? new Set(),
    admin: isAdmin(user, policy),
    kubevirt:
      user.username !== undefined && (config.kubevirtUsers ?? KUBEVIRT_CONTROLLER_USERS).includes(user.username),
  };
}

export function subjectOf(
  pod: KubePod,
  old: KubePod | null,
  namespace: string,
  where: string,
  template: boolean,
  ctx: CheckContext,
): PodSubject {
  const tenantName = tenantOfNamespace(ctx.view, namespace);
  const tenant = tenantName === null ? undefined : tenantNamed(ctx.policy, tenantName);
  const parsed = parseDemand(pod, ctx.policy.accelerators);
  const lookup = ctx.view.dra ?? NO_DRA;
  const dra = readPodDra(pod, namespace, ctx.policy, lookup);
  const demand: PodSubject['demand'] = parsed.ok ? withoutDraExtended(parsed.demand, dra) : parsed.error;
  const gpu = (demand instanceof DemandError ? true : wantsGpu(demand)) || dra.gpu;
  const decision =
    !(demand instanceof DemandError) && gpu && tenant
      ? decidePodGpu(demand, dra, tenant, ctx.policy, namespace, lookup, pod.spec?.nodeSelector ?? {})
      : null;
  return { pod, old, namespace, tenantName, tenant, demand, gpu, decision, where, template, dra };
}

/** Every violation of one pod or pod template, in a fixed order. */
export function podViolations(s: PodSubject, ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  if (s.demand instanceof DemandError) {
    out.push({ rule: BUILTIN.request, action: 'enforce', message: `${s.where}${s.demand.field}: ${s.demand.message}` });
  }
  out.push(
    ...acceleratorsCheck(s, ctx),
    ...tenancyCheck(s, ctx),
    ...launcherCheck(s, ctx),
    ...claimsCheck(s, ctx),
    ...accountingCheck(s, ctx),
    ...systemOwnedCheck(s, ctx),
    ...quotaCheck(s, ctx),
    ...policyRuleViolations(s, ctx),
  );
  return out;
}

/**
 * A VirtualMachineInstance or VirtualMachine template, checked as the launcher pod virt-controller will render from it
 * (core/kubevirt/vm-objects.ts): its devices, tenancy, pool and per-pod size like a workload template; a new VMI also
 * against quota, since its launcher pod follows at once (a VirtualMachine holds nothing until it runs).
 */
function vmViolations(
  kind: 'VirtualMachineInstance' | 'VirtualMachine',
  obj: unknown,
  namespace: string,
  create: boolean,
  ctx: CheckContext,
): Violation[] {
  const view = vmiView(kind, obj);
  if (view === null) return [];
  const s = subjectOf(launcherPodOf(view, namespace), null, namespace, view.where, true, ctx);
  const out: Violation[] = [];
  if (s.demand instanceof DemandError)
    out.push({ rule: BUILTIN.request, action: 'enforce', message: `${s.where}${s.demand.field}: ${s.demand.message}` });
  out.push(...acceleratorsCheck(s, ctx), ...tenancyCheck(s, ctx), ...claimsCheck(s, ctx), ...accountingCheck(s, ctx));
  // The mutating stage writes a vGPU for a fraction; one that could not be written (or a webhook that was skipped)
  // would leave the VM a container GPU request it cannot use.
  if (fractionWithoutDevice(s))
    out.push({
      rule: BUILTIN.kubevirt,
      action: 'enforce',
      message: `${s.where}tessera.io/gpu-fraction or gpu-memory on a VM is met with a vGPU device in spec.domain.devices.gpus, and this VM has none; check that Tessera's mutating webhook for KubeVirt is registered (mutate-vm.tessera.io), or name the vGPU in spec.domain.devices.gpus[].deviceName`,
    });
  if (kind === 'VirtualMachineInstance' && create) out.push(...quotaCheck({ ...s, template: false }, ctx));
  // The policy's rules about what a VM asks for and how it is labelled; not those about its images (the launcher's
  // image is KubeVirt's, checked on the pod) or edits of a running pod.
  const rules = ctx.policy.rules.filter((r) => r.kind !== 'ImageRegistry' && r.kind !== 'ImmutableFields');
  out.push(...policyRuleViolations(s, { ...ctx, policy: { ...ctx.policy, rules } }));
  return out;
}

function templateOf(obj: unknown, path: readonly string[]): KubePod | null {
  let cur: unknown = obj;
  for (const key of path) {
    if (typeof cur !== 'object' || cur === null) return null;
    cur = (cur as Record<string, unknown>)[key];
  }
  return typeof cur === 'object' && cur !== null ? (cur as KubePod) : null;
}

/** The findings of `after` that `before` did not have. */
function added(after: readonly Violation[], before: readonly Violation[]): Violation[] {
  const key = (v: Violation) => `${v.rule}\u0000${v.message}`;
  const had = new Set(before.map(key));
  return after.filter((v) => !had.has(key(v)));
}

/** The validating verdict of a request. */
export function validateRequest(
  req: AdmissionRequest,
  policy: Policy,
  view: ClusterView,
  config: AdmissionConfig,
): Verdict {
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return { allowed: true, violations: [] };
  const ctx = context(req, policy, view, config);
  const kind = req.kind?.kind;
  const namespace = req.namespace ?? '';
  let violations: Violation[] = [];
  if (kind === 'Pod') {
    const pod = (req.object ?? {}) as KubePod;
    const old = req.operation === 'UPDATE' ? ((req.oldObject ?? null) as KubePod | null) : null;
    const ns = namespace || pod.metadata?.namespace || '';
    const subject = subjectOf(pod, old, ns, '', false, ctx);
    violations = podViolations(subject, ctx);
    const quota = quotaNeedOf(subject, ctx);
    if (quota !== null) return { allowed: !violations.some((v) => v.action === 'enforce'), violations, quota };
    if (old !== null) {
      // An UPDATE is judged by what it changes: findings the pod already had (drift after a policy change) are for
      // the audit, and must not block a finalizer removal or a label edit on a running pod.
      violations = added(violations, podViolations(subjectOf(old, old, ns, '', false, ctx), ctx));
    }
  } else if (isBindingRequest(req)) {
    const target = bindingTarget(req);
    violations = bindingViolations(
      (req.object ?? {}) as KubeBinding,
      target,
      view.pod(target.namespace, target.name),
      ctx,
    );
  } else if (kind === 'Namespace') {
    const ns = (req.object ?? {}) as KubeNamespace;
    const old = req.operation === 'UPDATE' ? ((req.oldObject ?? null) as KubeNamespace | null) : null;
    violations = [...namespaceViolations(ns, old, ctx), ...adminAccessLabelViolations(ns, old, ctx)];
  } else if (kind === 'ResourceClaim' || kind === 'ResourceClaimTemplate') {
    violations = claimObjectViolations(
      kind,
      req.object ?? {},
      req.operation === 'UPDATE' ? (req.oldObject ?? null) : null,
      namespace,
      ctx,
    );
  } else if (req.kind?.group === KUBEVIRT_GROUP && isVmKind(kind)) {
    violations = vmViolations(kind, req.object, namespace, req.operation === 'CREATE', ctx);
    const old = req.operation === 'UPDATE' ? req.oldObject : undefined;
    // As for templates: an UPDATE is judged by the findings it adds (a VM started, stopped or relabelled).
    if (old) violations = added(violations, vmViolations(kind, old, namespace, false, ctx));
  } else if (kind !== undefined && TEMPLATES[kind]) {
    const path = TEMPLATES[kind];
    const where = `${kind} ${path.join('.')}: `;
    const template = templateOf(req.object, path);
    if (template) violations = podViolations(subjectOf(template, null, namespace, where, true, ctx), ctx);
    const oldTemplate = req.operation === 'UPDATE' ? templateOf(req.oldObject, path) : null;
    if (oldTemplate) {
      // As for pods: a rollout restart or a replica change must not be blocked by findings the template already had.
      violations = added(violations, podViolations(subjectOf(oldTemplate, null, namespace, where, true, ctx), ctx));
    }
  }
  return { allowed: !violations.some((v) => v.action === 'enforce'), violations };
}
