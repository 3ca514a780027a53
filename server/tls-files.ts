// Serving certificates read from files (a Secret mount or certs/), reloaded when they change without restarting:
// rotation swaps the files and the next TLS handshake uses the new pair.

import { readFileSync, statSync } from 'node:fs';
import type { Server } from 'node:https';
import type { Logger } from 'pino';
import { secondsToExpiry } from '../certs/authority.ts';

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

export function readTls(files: TlsFiles): { cert: string; key: string } {
  return { cert: readFileSync(files.certFile, 'utf8'), key: readFileSync(files.keyFile, 'utf8') };
}

/** Polls the files and swaps the server's secure context on change; returns a stop function. */
export function reloadTlsOnChange(
  server: Server,
  files: TlsFiles,
  log: Logger,
  onExpiry: (seconds: number) => void,
  pollMs = 5000,
): () => void {
  const stamp = () => `${statSync(files.certFile).mtimeMs}/${statSync(files.keyFile).mtimeMs}`;
  let last = stamp();
  onExpiry(secondsToExpiry(readTls(files).cert));
  const timer = setInterval(() => {
    try {
      const now = stamp();
      const pair = readTls(files);
      onExpiry(secondsToExpiry(pair.cert));
      if (now === last) return;
      server.setSecureContext(pair);
      last = now;
      log.info(
        { certFile: files.certFile, expiresInDays: Math.floor(secondsToExpiry(pair.cert) / 86400) },
        'serving certificate reloaded',
      );
    } catch (e) {
      // A half-written pair during rotation: keep the current context and try again at the next tick.
      log.warn({ err: e instanceof Error ? e.message : String(e) }, 'serving certificate not reloaded yet');
    }
  }, pollMs);
  timer.unref();
  return () => clearInterval(timer);
}
