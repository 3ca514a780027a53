// Plain JSON calls to the API server for the fleet controllers (Kueue's CRDs have no generated client here): GET,
// server-side apply, merge patch and create, with the kubeconfig's credentials and TLS settings. Errors carry the
// HTTP status and the API server's message.

import { request, type RequestOptions } from 'node:https';
import { request as httpRequest } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';

export class KubeApiError extends Error {
  override name = 'KubeApiError';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export class KubeJson {
  private readonly base: URL;
  private prepared: Promise<RequestOptions> | null = null;
  private readonly kc: KubeConfig;
  constructor(kc: KubeConfig) {
    this.kc = kc;
    const server = kc.getCurrentCluster()?.server;
    if (!server) throw new Error('the kubeconfig names no cluster server');
    this.base = new URL(server);
  }

  private options(): Promise<RequestOptions> {
    this.prepared ??= (async () => {
      const opts: RequestOptions = { headers: {} };
      await this.kc.applyToHTTPSOptions(opts);
      return opts;
    })();
    return this.prepared;
  }

  async call<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const opts = await this.options();
    const url = new URL(path, this.base);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const send = url.protocol === 'https:' ? request : httpRequest;
    return new Promise<T>((resolve, reject) => {
      const req = send(
        url,
        {
          ...opts,
          method,
          timeout: 10_000,
          headers: {
            ...opts.headers,
            accept: 'application/json',
            ...(payload !== undefined ? { 'content-type': contentType } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              try {
                resolve((text === '' ? {} : JSON.parse(text)) as T);
              } catch (e) {
                reject(e);
              }
              return;
            }
            let message = text;
            try {
              message = (JSON.parse(text) as { message?: string }).message ?? text;
            } catch {
              // not JSON: keep the text
            }
            reject(new KubeApiError(status, `${method} ${url.pathname}: ${status} ${message}`));
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname}: timed out`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  /** Server-side apply as `manager`, taking over conflicting fields (the object's owner decides what it applies). */
  apply<T>(path: string, body: unknown, manager: string): Promise<T> {
    return this.call<T>(
      'PATCH',
      `${path}?fieldManager=${encodeURIComponent(manager)}&force=true`,
      body,
      'application/apply-patch+yaml',
    );
  }

  mergePatch<T>(path: string, body: unknown, manager: string): Promise<T> {
    return this.call<T>(
      'PATCH',
      `${path}?fieldManager=${encodeURIComponent(manager)}`,
      body,
      'application/merge-patch+json',
    );
  }
}
