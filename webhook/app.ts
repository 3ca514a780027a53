// The webhook's HTTP surface: POST /mutate and /validate take an admission.k8s.io/v1 AdmissionReview and answer one
// (uid echoed); /healthz, /readyz (the API server answers, caches synced, a policy in force), /metrics and /policy.
// Handlers only parse, call the core and serialise; the one lookup they make is the pod a Binding names, which the
// review does not carry. Malformed or oversized bodies get a clear 4xx; an internal failure denies the request (fail
// closed) and is logged and counted, it never takes the process down; so does a request that needs the cluster's
// state while the API server is lost, with that reason.

import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { type ClusterView, tenantOfNamespace } from '../core/admission/cluster-view.ts';
import { reviewJob } from '../dispatcher/job-review.ts';
import {
  type AdmissionRequest,
  type AdmissionResponse,
  type AdmissionReview,
  unavailableResponse,
} from '../core/admission/request.ts';
import { bindingTarget, isBindingRequest } from '../core/admission/rules/binding.ts';
import { mutateRequest } from '../core/admission/mutate.ts';
import { mutationResponse, validationResponse } from '../core/admission/responses.ts';
import { validateRequest, type AdmissionConfig } from '../core/admission/validation.ts';
import type { KubePod } from '../core/kube-objects.ts';
import { ClusterUnavailableError } from '../server/cluster-connection.ts';
import type { PolicyStore } from '../server/policy-store.ts';
import type { WebhookMetrics } from './metrics.ts';
import type { QuotaReserver } from './quota-reserver.ts';
import type { Reservation } from '../core/admission/quota-reservations.ts';
import { BUILTIN } from '../core/admission/check.ts';

export interface WebhookDeps {
  readonly policies: PolicyStore;
  readonly view: ClusterView;
  /** Why the cluster view cannot be trusted now (phrased to follow "Tessera "), or null. */
  readonly clusterProblem: () => string | null;
  readonly config: AdmissionConfig;
  readonly metrics: WebhookMetrics;
  readonly log: Logger;
  /** Reads a pod from the API server (null when there is none); for the pods a Binding names that the view lacks. */
  readonly readPod?: (namespace: string, name: string) => Promise<KubePod | null>;
  /** Reserves admitted GPU pods' quota on the API server; without it quota is judged on the informer alone. */
  readonly reserver?: QuotaReserver;
}

/**
 * Whether the view's informer accounts for the reserved pod: it shows this very pod (not an earlier one of the same
 * name), or it saw the pod deleted (a pod created and deleted before its reservation settled holds nothing).
 */
export const shownBy =
  (view: ClusterView) =>
  (r: Reservation): boolean => {
    const [namespace = '', name = ''] = r.pod.split('/');
    return view.pod(namespace, name)?.metadata?.uid === r.uid || view.podGone?.(r.uid) === true;
  };

/** The request inside a review, or a message saying what is wrong with the body. */
export function parseReview(body: unknown): AdmissionRequest | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return 'the body is not a JSON object; send an admission.k8s.io/v1 AdmissionReview';
  const review = body as Partial<AdmissionReview>;
  if (review.apiVersion !== 'admission.k8s.io/v1' || review.kind !== 'AdmissionReview') {
    return `expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got ${JSON.stringify(review.apiVersion)} / ${JSON.stringify(review.kind)}; set admissionReviewVersions: ["v1"] in the webhook configuration`;
  }
  const req = review.request as Partial<AdmissionRequest> | undefined;
  if (typeof req !== 'object' || req === null) return 'the AdmissionReview has no request';
  if (typeof req.uid !== 'string' || req.uid === '') return 'request.uid is missing';
  if (typeof req.kind !== 'object' || req.kind === null || typeof req.kind.kind !== 'string')
    return 'request.kind is missing';
  if (!['CREATE', 'UPDATE', 'DELETE', 'CONNECT'].includes(String(req.operation)))
    return `request.operation ${JSON.stringify(req.operation)} is not CREATE, UPDATE, DELETE or CONNECT`;
  if (req.object !== undefined && req.object !== null && (typeof req.object !== 'object' || Array.isArray(req.object)))
    return 'request.object is not an object';
  return {
    ...(req as AdmissionRequest),
    userInfo: typeof req.userInfo === 'object' && req.userInfo !== null ? req.userInfo : {},
  };
}

/**
 * The view a review is judged on. A Binding names its pod without carrying it, and can follow the pod's creation by
 * milliseconds: when the informer cache does not have that pod yet (or has an older pod of the same name), it is read
 * from the API server. A failed read throws, and the review is denied (fail closed).
 */
async function viewFor(req: AdmissionRequest, view: ClusterView, deps: WebhookDeps): Promise<ClusterView> {
  if (!isBindingRequest(req) || !deps.readPod) return view;
  const target = bindingTarget(req);
  const cached = view.pod(target.namespace, target.name);
  if (cached && (target.uid === null || cached.metadata?.uid === target.uid)) return view;
  const live = (await deps.readPod(target.namespace, target.name)) ?? undefined;
  return {
    namespace: (name) => view.namespace(name),
    tenantUsage: (tenant, policy, exceptUid) => view.tenantUsage(tenant, policy, exceptUid),
    pod: (namespace, name) =>
      namespace === target.namespace && name === target.name ? live : view.pod(namespace, name),
    ...(view.dra ? { dra: view.dra } : {}),
  };
}

function reply(res: Response, response: AdmissionResponse): void {
  res.json({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response } satisfies AdmissionReview);
}

export function createWebhookApp(deps: WebhookDeps): express.Express {
  const { policies, view, config, metrics, log } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // The API server sends at most 3 MiB (MaxRequestBodyBytes); anything larger is not from it.
  app.use(express.json({ limit: '3mb', type: () => true }));

  const handle = (webhook: 'mutate' | 'validate') => async (req: Request, res: Response) => {
    const started = process.hrtime.bigint();
    const parsed = parseReview(req.body);
    if (typeof parsed === 'string') {
      metrics.malformed.inc({ reason: 'shape' });
      log.warn({ webhook, problem: parsed }, 'malformed AdmissionReview');
      res.status(400).json({ error: parsed });
      return;
    }
    let response: AdmissionResponse;
    const policy = policies.current();
    try {
      if (policy === null) {
        response = unavailableResponse(
          parsed.uid,
          `Tessera has no valid policy in force (${policies.status().problems.join('; ')}); fix the policy files`,
        );
      } else if (webhook === 'mutate') {
        const mutation = mutateRequest(parsed, policy, view);
        response = mutationResponse(parsed.uid, mutation);
        if (mutation.denial !== null) metrics.decisions.inc({ webhook, rule: 'tessera/tenancy', action: 'enforce' });
      } else {
        const verdict = validateRequest(parsed, policy, await viewFor(parsed, view, deps), {
          ...config,
          recentRevisions: policies.recentRevisions(),
        });
        for (const v of verdict.violations) metrics.decisions.inc({ webhook, rule: v.rule, action: v.action });
        response = validationResponse(parsed.uid, verdict, policy);
        if (verdict.allowed && verdict.quota && deps.reserver) {
          // Last, once everything else allows it: the reservation is what makes the quota hold under concurrency.
          // The API server sets the pod's UID before validating admission; a review without one keys by its own uid.
          const need = verdict.quota.uid ? verdict.quota : { ...verdict.quota, uid: `review-${parsed.uid}` };
          const informer = {
            shown: shownBy(view),
            usage: () => view.tenantUsage(need.tenant, policy, verdict.quota?.uid || null),
          };
          const outcome = await deps.reserver.reserve(need, informer, parsed.dryRun === true);
          if (!outcome.ok) {
            metrics.decisions.inc({ webhook, rule: BUILTIN.quota, action: 'enforce' });
            response = outcome.unavailable
              ? unavailableResponse(parsed.uid, outcome.message)
              : validationResponse(
                  parsed.uid,
                  {
                    allowed: false,
                    violations: [
                      ...verdict.violations,
                      { rule: BUILTIN.quota, action: 'enforce', message: outcome.message },
                    ],
                  },
                  policy,
                );
          }
        }
      }
    } catch (e) {
      if (e instanceof ClusterUnavailableError) {
        // Not a fault of Tessera's: the cluster's state is unknown, and the denial says why.
        metrics.decisions.inc({ webhook, rule: 'tessera/cluster-unavailable', action: 'enforce' });
        response = unavailableResponse(parsed.uid, e.message);
      } else {
        metrics.errors.inc({ webhook });
        log.error(
          { err: e, webhook, uid: parsed.uid, kind: parsed.kind.kind, namespace: parsed.namespace, name: parsed.name },
          'review failed inside Tessera',
        );
        response = {
          uid: parsed.uid,
          allowed: false,
          status: {
            code: 500,
            reason: 'InternalError',
            message:
              'Tessera could not evaluate this request (internal error, see the webhook logs); it was denied to keep GPU accounting safe',
          },
        };
      }
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics.reviewSeconds.observe(
      { webhook, kind: parsed.kind.kind, operation: parsed.operation, allowed: String(response.allowed) },
      seconds,
    );
    if (!response.allowed || (response.warnings?.length ?? 0) > 0) {
      log.info(
        {
          webhook,
          uid: parsed.uid,
          kind: parsed.kind.kind,
          namespace: parsed.namespace,
          name: parsed.name,
          user: parsed.userInfo.username,
          allowed: response.allowed,
          message: response.status?.message,
          warnings: response.warnings,
        },
        'admission decision',
      );
    }
    reply(res, response);
  };

  app.post('/mutate', handle('mutate'));
  app.post('/validate', handle('validate'));
  // A fleet's manager (docs/fleet.md): annotation-only GPU Jobs get the countable tessera.io/gpu-milli in their template.
  app.post('/mutate-job', async (req: Request, res: Response) => {
    const parsed = parseReview(req.body);
    if (typeof parsed === 'string') {
      metrics.malformed.inc({ reason: 'shape' });
      res.status(400).json({ error: parsed });
      return;
    }
    let response: AdmissionResponse;
    try {
      response = await reviewJob(parsed, {
        policy: () => policies.current(),
        namespaceTenant: async (ns) => tenantOfNamespace(view, ns),
        log,
      });
    } catch (e) {
      log.error({ err: e }, 'job review failed');
      response = {
        uid: parsed.uid,
        allowed: false,
        status: { code: 500, message: `Tessera could not weigh this job's GPUs (${String(e)}); retry` },
      };
    }
    reply(res, response);
  });
  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });
  app.get('/readyz', (_req, res) => {
    const status = policies.status();
    const problem = deps.clusterProblem();
    const ready = problem === null && status.state !== 'missing';
    const reason =
      problem !== null
        ? `Tessera ${problem}`
        : status.state === 'missing'
          ? `no valid policy: ${status.problems.join('; ')}`
          : status.state === 'stale'
            ? `serving last good policy revision ${status.revision}; the policy files on disk are invalid: ${status.problems.join('; ')}`
            : `policy revision ${status.revision} in force`;
    res.status(ready ? 200 : 503).json({ ready, reason, policy: status });
  });
  app.get('/policy', (_req, res) => {
    res.json(policies.status());
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.use((_req, res) => {
    res.status(404).json({ error: 'not found; the webhook serves POST /mutate, /validate and /mutate-job' });
  });
  // Body-parser failures (bad JSON, too large) end here, with the status it chose.
  app.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    void next;
    const e = err as { status?: number; type?: string; message?: string };
    const status = typeof e.status === 'number' && e.status >= 400 && e.status < 500 ? e.status : 500;
    const reason = e.type === 'entity.too.large' ? 'too-large' : e.type === 'entity.parse.failed' ? 'json' : 'other';
    metrics.malformed.inc({ reason });
    if (status === 500) log.error({ err }, 'request failed');
    const message =
      reason === 'too-large'
        ? 'the body is larger than 3 MiB, the API server’s limit'
        : reason === 'json'
          ? `the body is not valid JSON: ${e.message ?? ''}`
          : 'the request could not be read';
    res.status(status).json({ error: message });
  });
  return app;
}
