// A directory lock for builds under .cache/ that names its owner. A lock whose owner process is gone (a build killed
// by Ctrl-C or a timeout) is taken over at once; a waiter says what it waits for every few seconds instead of sitting
// silent.

import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';

interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly since: string;
  readonly building: string;
}

const OWNER_FILE = 'owner.json';
const REPORT_EVERY_MS = 10_000;
// A lock without an owner record was taken by an older checkout, whose builds may still be running (a cold control
// plane takes most of an hour on a loaded machine): it is trusted for as long as those checkouts trusted each other.
const ANONYMOUS_LOCK_MS = 40 * 60_000;

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(lock: string): LockOwner | undefined {
  try {
    return JSON.parse(readFileSync(join(lock, OWNER_FILE), 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

/** Why the lock may be taken over, or undefined while its owner may still be building. */
function staleReason(lock: string, now: number): string | undefined {
  const owner = readOwner(lock);
  if (owner === undefined) {
    const since = statSync(lock, { throwIfNoEntry: false })?.mtimeMs;
    if (since === undefined) return undefined;
    return now - since > ANONYMOUS_LOCK_MS ? 'it names no owner' : undefined;
  }
  if (owner.host !== hostname()) return undefined;
  return processAlive(owner.pid) ? undefined : `its owner, process ${owner.pid}, is gone`;
}

/**
 * Runs `build` under the lock directory `<dir>.lock` unless `complete()` already holds, so that concurrent callers
 * build once and the others wait for the result.
 */
export function withBuildLock(
  dir: string,
  complete: () => boolean,
  build: () => void,
  log: (line: string) => void = (line) => console.error(line),
  reportEveryMs = REPORT_EVERY_MS,
): void {
  if (complete()) return;
  mkdirSync(dirname(dir), { recursive: true });
  const lock = `${dir}.lock`;
  const what = basename(dir);
  let lastReport = Date.now();
  for (;;) {
    try {
      mkdirSync(lock);
      const owner: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString(), building: what };
      writeFileSync(join(lock, OWNER_FILE), JSON.stringify(owner));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const now = Date.now();
      const stale = staleReason(lock, now);
      if (stale !== undefined) {
        log(`taking over the build lock ${lock}: ${stale}`);
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (now - lastReport >= reportEveryMs) {
        const owner = readOwner(lock);
        const who = owner ? `process ${owner.pid} on ${owner.host}, building since ${owner.since}` : 'an unnamed owner';
        log(`waiting for ${what}: ${lock} is held by ${who}`);
        lastReport = now;
      }
      sleep(Math.min(1000, reportEveryMs));
      if (complete()) return;
    }
  }
  try {
    if (!complete()) build();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
