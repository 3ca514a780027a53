// The manager's mutating webhook for batch/v1 Jobs (POST /mutate-job, job-review.ts) as a server of its own, for
// `tessera serve dispatcher` and the fleet harness; with the chart, Tessera's webhook serves the same route.

import express, { type NextFunction, type Request, type Response } from 'express';
import { type AdmissionResponse, unavailableResponse } from '../core/admission/request.ts';
import { type JobWebhookDeps, reviewJob } from './job-review.ts';
import { TENANT_LABEL } from '../core/well-known-names.ts';
import type { KubeJson } from '../server/kube-json.ts';
import { serve, type Serving } from '../server/serve.ts';
import { checkTls, type TlsFiles } from '../server/tls-files.ts';
import { parseReview } from '../webhook/app.ts';

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
      response = unavailableResponse(
        parsed.uid,
        `Tessera could not read the ${TENANT_LABEL} label of namespace ${parsed.namespace ?? ''} to count the job's GPUs (${message}); retry`,
      );
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
