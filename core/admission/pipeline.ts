// Both admission stages in the API server's order, for offline use (`tessera policy apply`, `tessera policy test`):
// mutate, apply the patch, validate the result, and answer one AdmissionResponse carrying the mutating patch, every
// warning and the final verdict.

import jsonPatch from 'fast-json-patch';
import type { Policy } from '../policy/model.ts';
import type { ClusterView } from './cluster-view.ts';
import type { Violation } from './check.ts';
import type { AdmissionRequest, AdmissionResponse } from './request.ts';
import { mutateRequest } from './mutate.ts';
import { mutationResponse, validationResponse } from './responses.ts';
import { validateRequest, type AdmissionConfig } from './validation.ts';

export interface PipelineResult {
  readonly response: AdmissionResponse;
  /** The object after mutation (what the validating stage saw). */
  readonly object: unknown;
  readonly violations: readonly Violation[];
  /** Which stage denied the request, if one did. */
  readonly deniedBy: 'mutation' | 'validation' | null;
}

export function runAdmission(
  request: AdmissionRequest,
  policy: Policy,
  view: ClusterView,
  config: AdmissionConfig,
): PipelineResult {
  const mutation = mutateRequest(request, policy, view);
  const mutated = mutationResponse(request.uid, mutation);
  if (!mutated.allowed) return { response: mutated, object: request.object, violations: [], deniedBy: 'mutation' };
  const object =
    mutation.patch.length > 0
      ? jsonPatch.applyPatch(structuredClone(request.object), mutation.patch, true, false).newDocument
      : request.object;
  const verdict = validateRequest({ ...request, object }, policy, view, config);
  const validated = validationResponse(request.uid, verdict, policy);
  const response: AdmissionResponse = { ...validated };
  if (mutated.patch !== undefined && verdict.allowed) {
    response.patch = mutated.patch;
    response.patchType = 'JSONPatch';
  }
  const warnings = [...(mutated.warnings ?? []), ...(validated.warnings ?? [])];
  if (warnings.length > 0) response.warnings = warnings;
  else delete response.warnings;
  return { response, object, violations: verdict.violations, deniedBy: verdict.allowed ? null : 'validation' };
}
