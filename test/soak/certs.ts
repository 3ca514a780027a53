// The webhook's serving certificates in the soak, issued and rotated with the real `tessera certs issue|rotate`.
//
// Rotation works on a calendar of months and years (leaves renewed 30 days before they expire, a new CA introduced a
// year before the old one expires and used by leaves only after a 7-day overlap); a soak lasts minutes. So the soak
// runs the rotation history with `--now` in the past, every step at a date when that step is due, and every certificate
// it issues is valid at the real time (issued at most 90 days ago, back-dated a few minutes): the CA is issued 9.2
// years before the run, so that over the steps below the whole protocol plays out while the servers serve:
//   setup     the leaf is renewed (issued 89 days ago)
//   step 1    a new CA enters the bundle (publish it as the caBundle before anything is signed by it)
//   step 2    the leaf switches to the new CA (7 days later)
//   step 3    the old CA leaves the bundle (nothing served depends on it)
//   step 4    the leaf is renewed under the new CA (60 days after step 2)
// Later steps find nothing to do, as a scheduled rotation job usually does.

import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TESSERA = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'tessera.ts');
const DAY = 86_400_000;

export const WEBHOOK_CERT_NAME = 'tessera-webhook';
const NAMES = ['--name', WEBHOOK_CERT_NAME, '--dns', 'tessera-webhook.tessera-system.svc', '--ip', '127.0.0.1'];

/** Days before the run's start at which each `tessera certs` run is dated. */
export const CERT_CALENDAR = {
  /** The CA then expires 277 days after the run's start: more than a year after setup, less than after step 1. */
  issue: -3373,
  setup: -89,
  steps: [-87, -80, -79, -10],
} as const;

export interface CertRun {
  /** The --now it was dated. */
  readonly now: string;
  /** What `tessera certs` printed. */
  readonly output: string;
}

function run(args: string[]): string {
  return execFileSync(process.execPath, [TESSERA, 'certs', ...args], { encoding: 'utf8' }).trim();
}

/** The same, without blocking this process: the soak's Service stand-ins proxy the webhook calls meanwhile (key
 * generation on a busy machine takes seconds, and a blocked proxy would time the API server's calls out). */
async function runAsync(args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [TESSERA, 'certs', ...args], { encoding: 'utf8' });
  return stdout.trim();
}

const dated = (start: Date, days: number): string => new Date(start.getTime() + days * DAY).toISOString();

/** `tessera certs issue` then the setup rotation: a CA and a serving certificate valid now, in `dir`. */
export function issueCerts(dir: string, start: Date): CertRun[] {
  const issued = dated(start, CERT_CALENDAR.issue);
  const setup = dated(start, CERT_CALENDAR.setup);
  return [
    { now: issued, output: run(['issue', '--dir', dir, ...NAMES, '--now', issued]) },
    { now: setup, output: run(['rotate', '--dir', dir, ...NAMES, '--now', setup]) },
  ];
}

/** Rotation step `i` (0-based) of the calendar; past the calendar it runs at the real time. */
export async function rotateCerts(dir: string, start: Date, i: number): Promise<CertRun> {
  const days = CERT_CALENDAR.steps[i];
  const now = days === undefined ? new Date().toISOString() : dated(start, days);
  return { now, output: await runAsync(['rotate', '--dir', dir, ...NAMES, '--now', now]) };
}

/** The bundle clients must trust (ca.crt), as the platform publishes it in the webhook configurations. */
export function caBundle(dir: string): string {
  return readFileSync(join(dir, 'ca.crt'), 'utf8');
}
