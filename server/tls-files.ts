// Serving certificates read from files (a Secret mount or certs/), reloaded when they change without restarting:
// rotation swaps the files and the next TLS handshake uses the new pair.

import { readFileSync, statSync } from 'node:fs';
import type { Server } from 'node:https';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { secondsToExpiry } from '../certs/authority.ts';

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

export function readTls(files: TlsFiles): { cert: string; key: string } {
  return { cert: readFileSync(files.certFile, 'utf8'), key: readFileSync(files.keyFile, 'utf8') };
}

/** Throws a clear error unless the files can be read and hold a certificate and its key (checked before serving). */
export function checkTls(files: TlsFiles): void {
  let pair: { cert: string; key: string };
  try {
    pair = readTls(files);
  } catch (e) {
    throw new Error(
      `cannot read the serving certificate (--tls-cert ${files.certFile}, --tls-key ${files.keyFile}): ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  try {
    createSecureContext(pair);
  } catch (e) {
    throw new Error(
      `the serving certificate ${files.certFile} and key ${files.keyFile} are not a usable pair: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
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
