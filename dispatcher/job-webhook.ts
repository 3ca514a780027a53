// The manager's mutating webhook for batch/v1 Jobs (POST /mutate-job), served by the dispatcher process: a job that
// asks for GPUs only with Tessera's annotations gets tessera.io/gpu-milli written into its template at creation
// (core/fleet/countable-ask.ts), so that the manager's Kueue, and the workers' Kueues that receive MultiKueue's copy of
// the same Job, count its GPU-equivalents. It never denies: a job it cannot weigh is admitted as written, with a
// warning that says why (Tessera's webhook on the worker decides on the pods).

import express, { type NextFunction, type Request, type Response } from 'express';
import jsonPatch from 'fast-json-patch';
import type { Logger } from 'pino';
import type { AdmissionResponse } from '../core/admission/request.ts';
import { countableAsk, type PodTemplate, withCountableAsk } from '../core/fleet/countable-ask.ts';
import type { Policy } from '../core/policy/model.ts';
import { tenantNamed } from '../core/policy/model.ts';
import { TENANT_LABEL } from '../core/well-known-names.ts';
import type { KubeJson } from '../server/kube-json.ts';
import { serve, type Serving } from '../server/serve.ts';
import { checkTls, type TlsFiles } from '../server/tls-files.ts';
import { parseReview } from '../webhook/app.ts';

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

/** POST /mutate-job; a malformed review is a 400 that says what is wrong, a failed namespace read a denial. */
export function jobWebhookApp(deps: JobWebhookDeps): express.Express {
  const app = express();
  app.use(express.json({ limit: '3mb' }));
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  app.post('/mutate-job', async (req: Request, res: Response) => {
    const parsed = parseReview(req.body);
    if (typeof parsed === 'string') {
      res.status(400).json({ error: parsed });
      return;
    }
    let response: AdmissionResponse;
    try {
      response = await reviewJob(parsed, deps);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      deps.log.warn({ err: message, namespace: parsed.namespace }, 'job review failed');
      response = {
        uid: parsed.uid,
        allowed: false,
        status: {
          code: 503,
          reason: 'ServiceUnavailable',
          message: `Tessera could not read the ${TENANT_LABEL} label of namespace ${parsed.namespace ?? ''} to count the job's GPUs (${message}); retry`,
        },
      };
    }
    res.json({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response });
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    res.status(400).json({ error: `unreadable request body: ${err instanceof Error ? err.message : String(err)}` });
  });
  return app;
}

export interface JobWebhookOptions extends JobWebhookDeps {
  readonly host?: string;
  readonly port: number;
  readonly tls?: TlsFiles;
}

/** Serves /mutate-job until closed. */
export async function startJobWebhook(o: JobWebhookOptions): Promise<Serving> {
  if (o.tls) checkTls(o.tls);
  return serve(jobWebhookApp(o), {
    ...(o.host ? { host: o.host } : {}),
    port: o.port,
    ...(o.tls ? { tls: o.tls } : {}),
    log: o.log,
  });
}

/** A namespace's tenant label, read from the API server. */
export function namespaceTenantFrom(api: KubeJson): (namespace: string) => Promise<string | null> {
  return async (namespace) => {
    const ns = await api.get<{ metadata?: { labels?: Record<string, string> } }>(`/api/v1/namespaces/${namespace}`);
    return ns.metadata?.labels?.[TENANT_LABEL] ?? null;
  };
}
