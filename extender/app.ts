// The extender's HTTP surface: POST <prefix>/filter, /prioritize, /bind, /preempt with the kube-scheduler wire format;
// /healthz, /readyz (able to serve: API reachable, caches synced, a policy; see server.ts), /metrics. Handlers only parse, call the scheduler and serialise. A
// malformed body gets a 400 with a message; an internal failure answers {"Error": ...}; the process never dies of it.

import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { ExtenderMetrics } from './metrics.ts';
import type { ExtenderScheduler } from './scheduler.ts';
import { parseBindingArgs, parseExtenderArgs, parsePreemptionArgs, WireError } from './wire.ts';

export interface ExtenderAppDeps {
  readonly scheduler: ExtenderScheduler;
  readonly metrics: ExtenderMetrics;
  readonly log: Logger;
  /** Why the extender may not serve right now (not leader, caches not synced), or null when it may. */
  readonly notReady: () => string | null;
  /** Why /readyz fails (default: notReady). A standby that could serve is Ready; only the leader answers verbs. */
  readonly probeNotReady?: () => string | null;
  readonly prefix?: string;
}

export function createExtenderApp(deps: ExtenderAppDeps): express.Express {
  const { scheduler, metrics, log } = deps;
  const prefix = (deps.prefix ?? '').replace(/\/$/, '');
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Without nodeCacheCapable the scheduler sends whole Node objects: allow large bodies.
  app.use(express.json({ limit: '64mb', type: () => true }));

  const route =
    (verb: string, run: (body: unknown) => unknown | Promise<unknown>, failure: (message: string) => unknown) =>
    async (req: Request, res: Response) => {
      const started = process.hrtime.bigint();
      let outcome = 'ok';
      try {
        const blocked = deps.notReady();
        if (blocked !== null) {
          outcome = 'not-ready';
          // Close the connection: kube-scheduler keeps it alive, and kube-proxy routes only new connections to the
          // Service's current endpoint (the leader), so the next call must come on a new one.
          res.set('Connection', 'close');
          res.json(failure(`Tessera extender not serving: ${blocked}`));
          return;
        }
        res.json(await run(req.body));
      } catch (e) {
        if (e instanceof WireError) {
          outcome = 'malformed';
          res.status(400).json({ Error: e.message });
        } else {
          outcome = 'error';
          log.error({ err: e, verb }, 'extender call failed inside Tessera');
          res.json(failure(`Tessera extender internal error in ${verb}; see its logs`));
        }
      } finally {
        metrics.verbSeconds.observe({ verb, outcome }, Number(process.hrtime.bigint() - started) / 1e9);
      }
    };

  app.post(
    `${prefix}/filter`,
    route(
      'filter',
      (b) => scheduler.filter(parseExtenderArgs(b)),
      (message) => ({ Nodes: null, NodeNames: null, FailedNodes: {}, FailedAndUnresolvableNodes: {}, Error: message }),
    ),
  );
  app.post(
    `${prefix}/prioritize`,
    route(
      'prioritize',
      (b) => scheduler.prioritize(parseExtenderArgs(b)),
      () => [],
    ),
  );
  app.post(
    `${prefix}/bind`,
    route(
      'bind',
      (b) => scheduler.bind(parseBindingArgs(b)),
      (message) => ({ Error: message }),
    ),
  );
  app.post(
    `${prefix}/preempt`,
    route(
      'preempt',
      (b) => scheduler.preempt(parsePreemptionArgs(b)),
      () => ({ NodeNameToMetaVictims: {} }),
    ),
  );
  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });
  app.get('/readyz', (_req, res) => {
    const blocked = (deps.probeNotReady ?? deps.notReady)();
    const leading = deps.notReady() === null;
    res.status(blocked === null ? 200 : 503).json({
      ready: blocked === null,
      leader: leading,
      reason:
        blocked ??
        (leading ? 'leader with synced caches' : 'standby with synced caches; takes over if the leader goes'),
    });
  });
  app.get('/metrics', async (_req, res) => {
    // Leads and serves: holds the Lease with caches synced from a reachable API server (what /readyz says). A replica
    // that has just taken the Lease with its caches still filling is not yet the one whose series chargeback reads.
    metrics.leader.set(deps.notReady() === null ? 1 : 0);
    scheduler.observe();
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.use((_req, res) => {
    res
      .status(404)
      .json({ Error: `not found; the extender serves POST ${prefix}/filter, /prioritize, /bind and /preempt` });
  });
  app.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    void next;
    const e = err as { status?: number; type?: string; message?: string };
    const status = typeof e.status === 'number' && e.status >= 400 && e.status < 500 ? e.status : 500;
    res.status(status).json({
      Error:
        e.type === 'entity.parse.failed'
          ? `the body is not valid JSON: ${e.message ?? ''}`
          : e.type === 'entity.too.large'
            ? 'the body is too large'
            : 'the request could not be read',
    });
  });
  return app;
}
