// The admission pipeline, pure: an AdmissionRequest, the policy, a view of the cluster and the identities of Tessera's
// own service accounts in; an AdmissionResponse (uid echoed, base64 JSON Patch, warnings, audit annotations) out. The
// webhook server, `tessera policy apply` and `tessera policy test` all run this code.

import jsonPatch from 'fast-json-patch';
import { DemandError, readDemand, wantsGpu } from '../demand.ts';
import type { KubeNamespace, KubePod, PodSpec } from '../kube-objects.ts';
import { tenantNamed, type Policy } from '../policy/model.ts';
import { BUILTIN, type CheckContext, type PodSubject, type Violation } from './check.ts';
import { tenantOfNamespace, type ClusterView } from './cluster-view.ts';
import { decideGpu } from '../pools/gpu-decision.ts';
import { mutatePod } from './mutate.ts';
import { ensureEnv, hasEnv, VISIBLE_DEVICES_ENV } from './pod-edits.ts';
import type { AdmissionRequest, AdmissionResponse, UserInfo } from './request.ts';
import { accountingCheck } from './rules/accounting.ts';
import { namespaceViolations } from './rules/namespace.ts';
import { policyRuleViolations } from './rules/policy-rules.ts';
import { quotaCheck } from './rules/quota.ts';
import { systemOwnedCheck } from './rules/system-owned.ts';
import { tenancyCheck } from './rules/tenancy.ts';

export interface AdmissionConfig {
  /** Usernames of Tessera's own service accounts (system:serviceaccount:<ns>:<name>). */
  readonly systemUsers: readonly string[];
  /**
   * Policy revisions served just before the current one: a pod stamped by the mutating call under the previous
   * revision, validated after a hot reload, is not a forgery.
   */
  readonly recentRevisions?: ReadonlySet<string>;
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
  };
}

export function subjectOf(pod: KubePod, old: KubePod | null, namespace: string, where: string, template: boolean, ctx: CheckContext): PodSubject {
  const tenantName = tenantOfNamespace(ctx.view, namespace);
  const tenant = tenantName === null ? undefined : tenantNamed(ctx.policy, tenantName);
  let demand: PodSubject['demand'];
  try {
    demand = readDemand(pod);
  } catch (e) {
    if (!(e instanceof DemandError)) throw e;
    demand = e;
  }
  const gpu = demand instanceof DemandError ? true : wantsGpu(demand);
  const decision = !(demand instanceof DemandError) && gpu && tenant ? decideGpu(demand, tenant, ctx.policy) : null;
  return { pod, old, namespace, tenantName, tenant, demand, gpu, decision, where, template };
}

/** Every violation of one pod or pod template, in a fixed order. */
export function podViolations(s: PodSubject, ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  if (s.demand instanceof DemandError) {
    out.push({ rule: BUILTIN.request, action: 'enforce', message: `${s.where}${s.demand.field}: ${s.demand.message}` });
  }
  out.push(...tenancyCheck(s, ctx), ...accountingCheck(s, ctx), ...systemOwnedCheck(s, ctx), ...quotaCheck(s, ctx), ...policyRuleViolations(s, ctx));
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

/** The validating verdict of a request. */
export function validateRequest(req: AdmissionRequest, policy: Policy, view: ClusterView, config: AdmissionConfig): Verdict {
  if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return { allowed: true, violations: [] };
  const ctx = context(req, policy, view, config);
  const kind = req.kind?.kind;
  const namespace = req.namespace ?? '';
  let violations: Violation[] = [];
  if (kind === 'Pod') {
    const pod = (req.object ?? {}) as KubePod;
    const old = req.operation === 'UPDATE' ? ((req.oldObject ?? null) as KubePod | null) : null;
    const ns = namespace || pod.metadata?.namespace || '';
    violations = podViolations(subjectOf(pod, old, ns, '', false, ctx), ctx);
    if (old !== null) {
      // An UPDATE is judged by what it changes: findings the pod already had (drift after a policy change) are for
      // the audit, and must not block a finalizer removal or a label edit on a running pod.
      const before = new Set(podViolations(subjectOf(old, old, ns, '', false, ctx), ctx).map((v) => `${v.rule}\u0000${v.message}`));
      violations = violations.filter((v) => !before.has(`${v.rule}\u0000${v.message}`));
    }
  } else if (kind === 'Namespace') {
    violations = namespaceViolations((req.object ?? {}) as KubeNamespace, req.operation === 'UPDATE' ? ((req.oldObject ?? null) as KubeNamespace | null) : null, ctx);
  } else if (kind !== undefined && TEMPLATES[kind]) {
    const path = TEMPLATES[kind];
    const where = `${kind} ${path.join('.')}: `;
    const template = templateOf(req.object, path);
    if (template) violations = podViolations(subjectOf(template, null, namespace, where, true, ctx), ctx);
    const oldTemplate = req.operation === 'UPDATE' ? templateOf(req.oldObject, path) : null;
    if (oldTemplate) {
      // As for pods: a rollout restart or a replica change must not be blocked by findings the template already had.
      const before = new Set(podViolations(subjectOf(oldTemplate, null, namespace, where, true, ctx), ctx).map((v) => `${v.rule}\u0000${v.message}`));
      violations = violations.filter((v) => !before.has(`${v.rule}\u0000${v.message}`));
    }
  }
  return { allowed: !violations.some((v) => v.action === 'enforce'), violations };
}

export interface Mutation {
  readonly patch: jsonPatch.Operation[];
  readonly denial: string | null;
  readonly warnings: readonly string[];
}

/** The mutating stage's patch for a request. */
export function mutateRequest(req: AdmissionRequest, policy: Policy, view: ClusterView): Mutation {
  const none: Mutation = { patch: [], denial: null, warnings: [] };
  if (req.kind?.kind !== 'Pod' || typeof req.object !== 'object' || req.object === null) return none;
  const pod = req.object as KubePod;
  if (req.operation === 'UPDATE' && req.subResource === 'ephemeralcontainers') {
    // Only ephemeral containers may change through this subresource.
    const copy = structuredClone(pod);
    for (const c of (copy.spec as PodSpec | undefined)?.ephemeralContainers ?? []) if (!hasEnv(c, VISIBLE_DEVICES_ENV)) ensureEnv(c, { name: VISIBLE_DEVICES_ENV, value: 'void' });
    return { patch: jsonPatch.compare(pod, copy), denial: null, warnings: [] };
  }
  if (req.operation !== 'CREATE') return none;
  const namespace = req.namespace || pod.metadata?.namespace || '';
  const result = mutatePod(pod, tenantOfNamespace(view, namespace), policy);
  if (result.denial !== null) return { patch: [], denial: result.denial, warnings: result.warnings };
  return { patch: jsonPatch.compare(pod, result.pod), denial: null, warnings: result.warnings };
}

const MAX_WARNING = 256;

function clip(text: string): string {
  return text.length <= MAX_WARNING ? text : `${text.slice(0, MAX_WARNING - 1)}…`;
}

export function denialMessage(violations: readonly Violation[]): string {
  const enforced = violations.filter((v) => v.action === 'enforce');
  return `Tessera denied this request (${enforced.length} problem${enforced.length === 1 ? '' : 's'}):\n${enforced.map((v) => `- [${v.rule}] ${v.message}`).join('\n')}`;
}

function auditKey(rule: string): string {
  return `policy-audit-${rule.toLowerCase().replace(/[^a-z0-9.-]+/g, '-')}`.slice(0, 63).replace(/[-.]+$/, '');
}

/** The AdmissionResponse for a validating verdict. */
export function validationResponse(uid: string, verdict: Verdict, policy: Policy): AdmissionResponse {
  const warnings = verdict.violations.filter((v) => v.action === 'warn').map((v) => clip(`[${v.rule}] ${v.message}`));
  const audits = verdict.violations.filter((v) => v.action === 'audit');
  const response: AdmissionResponse = { uid, allowed: verdict.allowed };
  if (warnings.length > 0) response.warnings = warnings;
  const auditAnnotations: Record<string, string> = { 'policy-revision': policy.revision };
  for (const v of audits) auditAnnotations[auditKey(v.rule)] = v.message;
  response.auditAnnotations = auditAnnotations;
  if (!verdict.allowed) response.status = { code: 403, reason: 'Forbidden', message: denialMessage(verdict.violations) };
  return response;
}

/** The AdmissionResponse for a mutation. */
export function mutationResponse(uid: string, mutation: Mutation): AdmissionResponse {
  if (mutation.denial !== null) {
    return { uid, allowed: false, status: { code: 403, reason: 'Forbidden', message: `Tessera denied this pod:\n- [${BUILTIN.tenancy}] ${mutation.denial}` } };
  }
  const response: AdmissionResponse = { uid, allowed: true };
  if (mutation.patch.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(mutation.patch)).toString('base64');
  }
  if (mutation.warnings.length > 0) response.warnings = mutation.warnings.map(clip);
  return response;
}
