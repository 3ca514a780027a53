// What the fleet manager's job webhook answers for one batch/v1 Job review: a job that asks for GPUs only with Tessera's
// annotations gets tessera.io/gpu-milli written into its template at creation (core/fleet/countable-ask.ts), so that the
// manager's Kueue, and the workers' Kueues that receive MultiKueue's copy of the same Job, count its GPU-equivalents.
// It never denies on the job's content: a job it cannot weigh is admitted as written (Tessera's webhook on the worker
// decides on the pods). Served by the dispatcher process (dispatcher/job-webhook.ts) and by Tessera's webhook on the
// manager (webhook/app.ts, the chart's fleet.manager).

import jsonPatch from 'fast-json-patch';
import type { Logger } from 'pino';
import type { AdmissionResponse } from '../core/admission/request.ts';
import { countableAsk, type PodTemplate, withCountableAsk } from '../core/fleet/countable-ask.ts';
import type { Policy } from '../core/policy/model.ts';
import { tenantNamed } from '../core/policy/model.ts';

export interface JobWebhookDeps {
  readonly policy: () => Policy | null;
  /** The tessera.io/tenant label of a namespace (null when it has none); throws when it cannot be read. */
  readonly namespaceTenant: (namespace: string) => Promise<string | null>;
  readonly log: Logger;
}

interface JobObject {
  spec?: { template?: PodTemplate };
}

/** The answer to one Job review (always allowed; a patch when the template needs the countable resource). */
export async function reviewJob(
  req: { uid: string; namespace?: string; object?: unknown; operation: string },
  deps: JobWebhookDeps,
): Promise<AdmissionResponse> {
  const allowed: AdmissionResponse = { uid: req.uid, allowed: true };
  const job = req.object as JobObject | undefined;
  const template = job?.spec?.template;
  if (req.operation !== 'CREATE' || !template || !req.namespace) return allowed;
  const policy = deps.policy();
  if (policy === null)
    return { ...allowed, warnings: ['Tessera has no policy in force; the job is counted as written'] };
  const tenantName = await deps.namespaceTenant(req.namespace);
  const tenant = tenantName === null ? undefined : tenantNamed(policy, tenantName);
  if (!tenant) return allowed;
  const ask = countableAsk(template, req.namespace, tenant, policy);
  if (ask.kind === 'keep') return allowed;
  const copy = structuredClone(job) as JobObject;
  copy.spec!.template = withCountableAsk(template, ask);
  const patch = jsonPatch.compare(job as object, copy as object);
  deps.log.info(
    { namespace: req.namespace, milli: ask.milli, pool: ask.pool },
    'job template counts its GPU-equivalents in tessera.io/gpu-milli',
  );
  return {
    ...allowed,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
    warnings: [
      `Tessera added tessera.io/gpu-milli: ${ask.milli} to the template's first container, so that Kueue counts the GPU-equivalents its annotations ask for`,
    ],
  };
}
