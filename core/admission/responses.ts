// AdmissionResponses from the two stages' results: the base64 JSON Patch, warnings clipped to a readable length, audit
// annotations, and a denial message that lists every enforced problem with its rule.

import { BUILTIN, type Violation } from './check.ts';
import type { Mutation } from './mutate.ts';
import type { AdmissionResponse } from './request.ts';
import type { Policy } from '../policy/model.ts';
import type { Verdict } from './validation.ts';

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
  if (!verdict.allowed)
    response.status = { code: 403, reason: 'Forbidden', message: denialMessage(verdict.violations) };
  return response;
}

/** The AdmissionResponse for a mutation. */
export function mutationResponse(uid: string, mutation: Mutation): AdmissionResponse {
  if (mutation.denial !== null) {
    return {
      uid,
      allowed: false,
      status: {
        code: 403,
        reason: 'Forbidden',
        message: `Tessera denied this ${mutation.subject ?? 'pod'}:\n- [${mutation.subject ? BUILTIN.kubevirt : BUILTIN.tenancy}] ${mutation.denial}`,
      },
    };
  }
  const response: AdmissionResponse = { uid, allowed: true };
  if (mutation.patch.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = Buffer.from(JSON.stringify(mutation.patch)).toString('base64');
  }
  if (mutation.warnings.length > 0) response.warnings = mutation.warnings.map(clip);
  return response;
}
