// Tessera's servers as the soak runs them: each replica is its own `tessera serve webhook|extender` process (so that a
// SIGKILL is a real crash), started again after a delay when it dies, as a Deployment's ReplicaSet would.

import type { ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess, stopProcess } from '../controlplane/cluster.ts';
import { probe, type Backend } from './service-proxy.ts';

// The `tessera` command as users run it: the launcher runs the bundle (dist/) while it is fresh, else the sources.
const TESSERA = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'launcher', 'tessera.mjs');

export interface ReplicaSpec {
  /** e.g. webhook-a; also the log file's name in `dir`. */
  readonly name: string;
  readonly kind: 'webhook' | 'extender';
  readonly port: number;
  /** `tessera serve <kind>` arguments after the kind, without --port and --host. */
  readonly args: readonly string[];
  readonly dir: string;
  /** The readiness URL on loopback (http or https). */
  readonly readyUrl: string;
}

export class Replica implements Backend {
  readonly spec: ReplicaSpec;
  private child: ChildProcess | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  private pendingRestart: (() => void) | null = null;
  /** When it was killed and when started again (ms since the epoch; `to` null while down): a scrape that failed
   * then is explained. */
  readonly outages: { from: number; to: number | null }[] = [];

  constructor(spec: ReplicaSpec) {
    this.spec = spec;
  }

  get name(): string {
    return this.spec.name;
  }

  get port(): number {
    return this.spec.port;
  }

  get readyUrl(): string {
    return this.spec.readyUrl;
  }

  get pid(): number | null {
    return this.running ? (this.child?.pid ?? null) : null;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.running) return;
    const outage = this.outages.at(-1);
    if (outage && outage.to === null) outage.to = Date.now();
    this.child = startProcess(
      this.spec.name,
      process.execPath,
      [TESSERA, 'serve', this.spec.kind, ...this.spec.args, '--host', '127.0.0.1', '--port', String(this.spec.port)],
      this.spec.dir,
    );
  }

  /** SIGKILL: no drain, no lease release, no goodbye. Returns the pid killed, or null when it was not running. */
  kill(): number | null {
    const pid = this.pid;
    if (pid === null) return null;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return null;
    }
    this.outages.push({ from: Date.now(), to: null });
    return pid;
  }

  /** Starts the replica again after `ms` (what the ReplicaSet and the kubelet's restart back-off amount to). */
  restartAfter(ms: number): Promise<void> {
    this.cancelRestart();
    return new Promise((resolve) => {
      this.pendingRestart = resolve;
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        this.pendingRestart = null;
        this.start();
        resolve();
      }, ms);
    });
  }

  /** Drops a planned restart (a rollout or the end of the run stops it first); whoever waits for it is released. */
  private cancelRestart(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.pendingRestart?.();
    this.pendingRestart = null;
  }

  /** Whether its readiness probe passes now (the extender is ready only while it leads). */
  async ready(): Promise<boolean> {
    if (!this.running) return false;
    return probe(this.spec.readyUrl);
  }

  /** Stops it: SIGTERM (the server drains and, for the extender, releases its lease), SIGKILL after 5 s. */
  async stop(): Promise<void> {
    this.cancelRestart();
    // Down from now (a rollout starts it again): a scrape that fails meanwhile is explained.
    if (this.running) this.outages.push({ from: Date.now(), to: null });
    if (this.child) await stopProcess(this.child);
    this.child = null;
  }
}

/** Waits until `check` holds, polling every `everyMs`, at most `timeoutMs`; returns whether it held. */
export async function until(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  everyMs = 250,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return true;
    } catch {
      // not yet
    }
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
