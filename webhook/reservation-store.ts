// The quota reservations ConfigMap as the webhook reads and writes it: GET, then PUT with the resourceVersion it read
// (a 409 means another replica wrote in between). Calls go over one keep-alive agent: they sit on the admission path
// of every GPU pod, and the generated client would open a new TLS connection per call.

import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import {
  formatReservations,
  parseReservations,
  RESERVATIONS_CONFIGMAP,
  type Reservation,
} from '../core/admission/quota-reservations.ts';
import { KubeApiError as ReservationStoreError } from '../server/kube-json.ts';

export interface ReservationObject {
  readonly reservations: readonly Reservation[];
  readonly resourceVersion: string;
}

/** Another writer changed the object since it was read (HTTP 409). */
export class ReservationConflict extends Error {
  override name = 'ReservationConflict';
}

/** The API server refused or could not answer (`status` 0: no answer): server/kube-json.ts's one API error. */
export { ReservationStoreError };

export interface ReservationStore {
  /** Where the reservations live, for messages: `namespace/name`. */
  readonly where: string;
  /** The reservations and their resourceVersion; creates the empty ConfigMap when it is missing. */
  read(): Promise<ReservationObject>;
  /** Replaces the reservations if the object is still at `resourceVersion`; ReservationConflict otherwise. */
  write(reservations: readonly Reservation[], resourceVersion: string): Promise<ReservationObject>;
}

interface ConfigMap {
  metadata?: { resourceVersion?: string };
  data?: Record<string, string>;
}

export function kubernetesReservationStore(kc: KubeConfig, namespace: string, timeoutMs = 3_000): ReservationStore {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig names no cluster server');
  const base = new URL(server);
  const secure = base.protocol === 'https:';
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`;
  const where = `${namespace}/${RESERVATIONS_CONFIGMAP}`;
  let prepared: Promise<RequestOptions> | null = null;
  const options = (): Promise<RequestOptions> => {
    prepared ??= (async () => {
      const opts: RequestOptions = { headers: {} };
      await kc.applyToHTTPSOptions(opts);
      opts.agent = secure
        ? new Agent({
            keepAlive: true,
            maxSockets: 16,
            ca: opts.ca,
            cert: opts.cert,
            key: opts.key,
            rejectUnauthorized: opts.rejectUnauthorized,
          })
        : new HttpAgent({ keepAlive: true, maxSockets: 16 });
      return opts;
    })();
    return prepared;
  };
  const call = async (method: string, url: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
    const opts = await options();
    const data = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = (secure ? httpsRequest : httpRequest)(
        new URL(url, base),
        {
          ...opts,
          method,
          headers: {
            ...(opts.headers as Record<string, string>),
            accept: 'application/json',
            ...(data ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(data)) } : {}),
          },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let json: unknown = null;
            try {
              json = text ? JSON.parse(text) : null;
            } catch {
              json = text;
            }
            resolve({ status: res.statusCode ?? 0, json });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (e) => reject(new ReservationStoreError(0, `${method} ${where}: ${e.message}`)));
      req.end(data);
    });
  };
  const objectOf = (r: { status: number; json: unknown }, what: string): ReservationObject => {
    if (r.status === 409) throw new ReservationConflict(`${what}: ${(r.json as { message?: string })?.message}`);
    if (r.status < 200 || r.status >= 300)
      throw new ReservationStoreError(
        r.status,
        `${what}: ${(r.json as { message?: string } | null)?.message ?? `HTTP ${r.status}`}`,
      );
    const cm = r.json as ConfigMap;
    return { reservations: parseReservations(cm.data), resourceVersion: cm.metadata?.resourceVersion ?? '' };
  };
  const body = (reservations: readonly Reservation[], resourceVersion?: string) => ({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: RESERVATIONS_CONFIGMAP, namespace, ...(resourceVersion ? { resourceVersion } : {}) },
    data: formatReservations(reservations),
  });
  return {
    where,
    async read() {
      const r = await call('GET', `${path}/${RESERVATIONS_CONFIGMAP}`);
      if (r.status !== 404) return objectOf(r, `read ${where}`);
      // The manifests ship it; where it is missing and the webhook may create it (tests, dev clusters), it does.
      const created = await call('POST', path, body([]));
      if (created.status === 409)
        return objectOf(await call('GET', `${path}/${RESERVATIONS_CONFIGMAP}`), `read ${where}`);
      return objectOf(created, `create ${where} (it is missing; the manifests and the chart ship it)`);
    },
    async write(reservations, resourceVersion) {
      return objectOf(
        await call('PUT', `${path}/${RESERVATIONS_CONFIGMAP}`, body(reservations, resourceVersion)),
        `update ${where}`,
      );
    },
  };
}
