// The extender's HTTP surface: POST <prefix>/filter, /prioritize, /bind, /preempt with the kube-scheduler wire format;
// /healthz, /readyz (able to serve: API reachable, caches synced, a policy; see server.ts), /metrics. Handlers only parse, call the scheduler and serialise. A
// malformed body gets a 400 with a message; an internal failure answers {"Error": ...}; the process never dies of it.

import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
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

/** The largest body a verb reads: without nodeCacheCapable the scheduler sends whole Node objects. */
const BODY_LIMIT = 64 << 20;

interface Verb {
  readonly name: string;
  readonly run: (body: unknown) => unknown | Promise<unknown>;
  readonly failure: (message: string) => unknown;
}

/**
 * The extender's request listener. The four verbs kube-scheduler calls for every pod are answered on a direct path
 * (read the body, parse, run, one write); express's router and body parser cost about a fifth of the extender's CPU
 * per pod in the scheduler benchmark. Everything else (probes, metrics, 404s) goes through express.
 */
export function createExtenderApp(deps: ExtenderAppDeps): RequestListener {
  const { scheduler, metrics, log } = deps;
  const prefix = (deps.prefix ?? '').replace(/\/$/, '');
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  const verbs = new Map<string, Verb>(
    [
      {
        name: 'filter',
        run: (b: unknown) => scheduler.filter(parseExtenderArgs(b)),
        failure: (message: string) => ({
          Nodes: null,
          NodeNames: null,
          FailedNodes: {},
          FailedAndUnresolvableNodes: {},
          Error: message,
        }),
      },
      { name: 'prioritize', run: (b: unknown) => scheduler.prioritize(parseExtenderArgs(b)), failure: () => [] },
      {
        name: 'bind',
        run: (b: unknown) => scheduler.bind(parseBindingArgs(b)),
        failure: (message: string) => ({ Error: message }),
      },
      {
        name: 'preempt',
        run: (b: unknown) => scheduler.preempt(parsePreemptionArgs(b)),
        failure: () => ({ NodeNameToMetaVictims: {} }),
      },
    ].map((v) => [`${prefix}/${v.name}`, v]),
  );

  const answer = (res: ServerResponse, status: number, body: unknown, close = false): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      ...(close ? { connection: 'close' } : {}),
    });
    res.end(text);
  };

  const serveVerb = async (verb: Verb, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = process.hrtime.bigint();
    let outcome = 'ok';
    try {
      const read = await readBody(req);
      if (typeof read !== 'string') {
        outcome = 'malformed';
        answer(res, read.status, { Error: read.message });
        return;
      }
      const blocked = deps.notReady();
      if (blocked !== null) {
        outcome = 'not-ready';
        // Close the connection: kube-scheduler keeps it alive, and kube-proxy routes only new connections to the
        // Service's current endpoint (the leader), so the next call must come on a new one.
        answer(res, 200, verb.failure(`Tessera extender not serving: ${blocked}`), true);
        return;
      }
      let body: unknown;
      try {
        body = read === '' ? {} : JSON.parse(read);
      } catch (e) {
        outcome = 'malformed';
        answer(res, 400, { Error: `the body is not valid JSON: ${e instanceof Error ? e.message : String(e)}` });
        return;
      }
      answer(res, 200, await verb.run(body));
    } catch (e) {
      if (e instanceof WireError) {
        outcome = 'malformed';
        answer(res, 400, { Error: e.message });
      } else {
        outcome = 'error';
        log.error({ err: e, verb: verb.name }, 'extender call failed inside Tessera');
        if (!res.headersSent)
          answer(res, 200, verb.failure(`Tessera extender internal error in ${verb.name}; see its logs`));
      }
    } finally {
      metrics.verbSeconds.observe({ verb: verb.name, outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };

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
    res.status(status).json({ Error: 'the request could not be read' });
  });
  const seen = new WeakSet<object>();
  return (req, res) => {
    const verb = req.method === 'POST' ? verbs.get((req.url ?? '').split('?', 1)[0]!) : undefined;
    if (verb && !seen.has(req.socket)) {
      seen.add(req.socket);
      metrics.connections.inc();
    }
    if (verb) void serveVerb(verb, req, res);
    else app(req, res);
  };
}

/** The request's body as text, or why it cannot be read (too large, cut off). */
function readBody(req: IncomingMessage): Promise<string | { status: number; message: string }> {
  return new Promise((resolve) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > BODY_LIMIT) {
      req.resume();
      resolve({ status: 413, message: 'the body is too large' });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= BODY_LIMIT) chunks.push(c);
    });
    req.on('end', () =>
      resolve(size > BODY_LIMIT ? { status: 413, message: 'the body is too large' } : Buffer.concat(chunks).toString()),
    );
    // A caller gone before the end (a timed-out kube-scheduler): settle, so the call is counted and nothing waits.
    const cutOff = () => resolve({ status: 400, message: 'the request could not be read' });
    req.on('error', cutOff);
    req.on('close', () => {
      if (!req.complete) cutOff();
    });
  });
}
