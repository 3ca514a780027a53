// Serving an express app on HTTP or HTTPS, the same way for the webhook and the extender: certificates reloaded from
// disk when they change, keep-alive longer than the callers' idle timeouts, a URL for logs and tests, a clean close.

import { createServer as createHttpServer, type Server as HttpServer, type RequestListener } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { readTls, reloadTlsOnChange, type TlsFiles } from './tls-files.ts';

export interface ServeOptions {
  readonly host?: string;
  readonly port: number;
  readonly tls?: TlsFiles;
  readonly log: Logger;
  /** Told the serving certificate's remaining lifetime at every reload check. */
  readonly onCertificateExpiry?: (seconds: number) => void;
}

export interface Serving {
  readonly port: number;
  /** Base URL on loopback when bound to all interfaces. */
  readonly url: string;
  close(): Promise<void>;
}

export async function serve(app: RequestListener, options: ServeOptions): Promise<Serving> {
  let server: HttpServer | HttpsServer;
  let stopTls = () => {};
  if (options.tls) {
    const https = createHttpsServer({ ...readTls(options.tls), minVersion: 'TLSv1.2' }, app);
    stopTls = reloadTlsOnChange(https, options.tls, options.log, options.onCertificateExpiry ?? (() => {}));
    server = https;
  } else {
    server = createHttpServer(app);
  }
  // Callers (the API server, kube-scheduler) keep connections alive; keep ours open longer than their idle timeout.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 30_000;
  const host = options.host ?? '0.0.0.0';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `${options.tls ? 'https' : 'http'}://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  return {
    port,
    url,
    async close() {
      stopTls();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
    },
  };
}
