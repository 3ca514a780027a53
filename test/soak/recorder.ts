// What the soak leaves for anyone to check, in the format of DESIGN.md ("A living cluster"): snapshot-NNNN.json every
// few seconds and at the end, policy/ (the files in force) and faults.json ([{time, kind, detail}], one entry per
// injected fault). Every snapshot is checked at once with core's checkInvariants under the policy in force; a
// violation is kept with the snapshot's file name, whatever fault was going on.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { takeSnapshot, writeSnapshot } from '../../cli/snapshot.ts';
import type { ClusterSnapshot } from '../../core/invariants/cluster-snapshot.ts';
import { checkInvariants } from '../../core/invariants/check.ts';
import type { Policy } from '../../core/policy/model.ts';

export interface Violation {
  /** The snapshot file it was found in, or the end-of-run check that found it. */
  readonly where: string;
  readonly invariant: string;
  readonly subject: string;
  readonly message: string;
}

export interface FaultEntry {
  readonly time: string;
  readonly kind: string;
  detail: string;
}

export class Recorder {
  readonly dir: string;
  readonly violations: Violation[] = [];
  readonly faults: FaultEntry[] = [];
  written = 0;
  /** The time of the last snapshot written (ms since the epoch). */
  lastTime: number | null = null;
  /** Snapshot attempts that failed (the API server down during a fault), with why. */
  readonly skipped: string[] = [];
  private readonly kc: KubeConfig;
  private readonly policy: () => Policy;
  /** Called with every snapshot taken. */
  onSnapshot: (snapshot: ClusterSnapshot) => void = () => {};
  private timer: NodeJS.Timeout | null = null;
  private busy: Promise<unknown> | null = null;

  constructor(dir: string, kc: KubeConfig, policy: () => Policy) {
    this.dir = dir;
    this.kc = kc;
    this.policy = policy;
    mkdirSync(dir, { recursive: true });
  }

  /** Takes, writes and checks one snapshot; returns it with its file name, or null when the API did not answer. */
  async snapshot(): Promise<{ file: string; snapshot: ClusterSnapshot } | null> {
    let snapshot: ClusterSnapshot;
    try {
      snapshot = await takeSnapshot(this.kc);
    } catch (e) {
      this.skipped.push(`${new Date().toISOString()}: ${e instanceof Error ? e.message : String(e)}`.slice(0, 200));
      return null;
    }
    const file = `snapshot-${String(this.written++).padStart(4, '0')}.json`;
    writeSnapshot(join(this.dir, file), snapshot);
    this.lastTime = Date.parse(snapshot.time);
    for (const v of checkInvariants(snapshot, this.policy()))
      this.violations.push({ where: file, invariant: v.invariant, subject: v.subject, message: v.message });
    this.onSnapshot(snapshot);
    return { file, snapshot };
  }

  /** A snapshot every `everyMs` (skipped while the previous one is still being taken). */
  start(everyMs: number): void {
    this.timer = setInterval(() => {
      if (this.busy !== null) return;
      this.busy = this.snapshot().finally(() => (this.busy = null));
    }, everyMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.busy;
  }

  violation(where: string, invariant: string, subject: string, message: string): void {
    this.violations.push({ where, invariant, subject, message });
  }

  /** Logs a fault injected `at` (now by default); the returned entry's detail may be completed later (recovery,
   * takeover). */
  fault(kind: string, detail: string, at = new Date()): FaultEntry {
    const entry: FaultEntry = { time: at.toISOString(), kind, detail };
    this.faults.push(entry);
    this.writeFaults();
    return entry;
  }

  writeFaults(): void {
    writeFileSync(join(this.dir, 'faults.json'), `${JSON.stringify(this.faults, null, 2)}\n`);
  }
}
