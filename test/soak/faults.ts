// The fault injector: carries out the plan (fault-plan.ts) one fault at a time, as an operator's bad day would, and
// logs each in faults.json, with the handoff gap of each extender rollout and leader kill (handoff-probe.ts). Killed replicas come back after a delay, as a Deployment brings them back; a corrupted
// policy file is repaired after a while; certificates rotate with `tessera certs rotate` and the platform then publishes
// the new CA bundle in the webhook configurations.

import { get } from 'node:https';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { SeededRandom } from '../../core/simulation/random.ts';
import { caBundle, rotateCerts } from './certs.ts';
import type { FaultKind, PlannedFault } from './fault-plan.ts';
import { HandoffProbe } from './handoff-probe.ts';
import type { PolicyFiles } from './policy-files.ts';
import type { Recorder } from './recorder.ts';
import { until, type Replica } from './replicas.ts';
import type { Topology } from './topology.ts';

export interface InjectorOptions {
  readonly seed: number;
  /** When the load (and the plan's clock) started. */
  readonly startedAt: number;
  /** The run's start, for the certificate calendar. */
  readonly start: Date;
  /** How long a killed replica stays down, and how long a policy file stays broken: [min, max] ms. */
  readonly downMs: readonly [number, number];
}

interface PolicyStatusReply {
  state?: string;
  revision?: string | null;
}

function policyStatus(port: number): Promise<PolicyStatusReply | null> {
  return new Promise((resolve) => {
    const req = get(`https://127.0.0.1:${port}/policy`, { rejectUnauthorized: false, timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as PolicyStatusReply);
        } catch {
          resolve(null);
        }
      });
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(null));
  });
}

export interface HandoffGap {
  readonly kind: 'rollout' | 'leader-kill';
  readonly ms: number;
  /** What the first failed call got, or null when none failed. */
  readonly why: string | null;
}

/** How long after the leader stopped an outage of the extender's Service counts as that handoff's gap. */
const HANDOFF_WINDOW_MS = 15_000;

export class FaultInjector {
  readonly counts: Partial<Record<FaultKind, number>> = {};
  /** The handoff gap of each rollout and leader kill (ms). */
  readonly handoffGaps: HandoffGap[] = [];
  private readonly probe: HandoffProbe;
  private readonly t: Topology;
  private readonly policy: PolicyFiles;
  private readonly rec: Recorder;
  private readonly o: InjectorOptions;
  private readonly rng: SeededRandom;
  private rotations = 0;
  private stopped = false;
  /** Recoveries still under way (replica restarts, policy repairs, takeover measurements). */
  private readonly pending = new Set<Promise<void>>();

  constructor(topology: Topology, policy: PolicyFiles, recorder: Recorder, options: InjectorOptions) {
    this.t = topology;
    this.policy = policy;
    this.rec = recorder;
    this.o = options;
    this.rng = new SeededRandom(options.seed);
    this.probe = new HandoffProbe(topology.extenderProxy.port);
    this.probe.start();
  }

  private downMs(): number {
    const [a, b] = this.o.downMs;
    return a + this.rng.below(b - a + 1);
  }

  private background(work: Promise<void>): void {
    const p = work.catch(() => {}).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Runs the plan; resolves when the last fault has been injected. */
  async run(plan: readonly PlannedFault[]): Promise<void> {
    for (const f of plan) {
      const wait = this.o.startedAt + f.atMs - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (this.stopped) return;
      this.counts[f.kind] = (this.counts[f.kind] ?? 0) + 1;
      try {
        await this.inject(f.kind);
      } catch (e) {
        this.rec.fault(f.kind, `the fault could not be injected: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  /** Waits for every recovery under way (replicas back, policy repaired). */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  stop(): void {
    this.stopped = true;
    this.probe.stop();
  }

  private async inject(kind: FaultKind): Promise<void> {
    switch (kind) {
      case 'extender-leader-kill':
        return this.killExtenderLeader();
      case 'extender-rollout':
        return this.rollOutExtenders();
      case 'webhook-replica-kill':
        return this.killWebhook();
      case 'scheduler-restart': {
        const e = this.rec.fault(
          kind,
          'kube-scheduler stopped (SIGTERM) and started again with the same configuration',
        );
        const began = Date.now();
        await this.t.cluster.startScheduler(this.t.schedulerConfig);
        e.detail += `; healthy again after ${secs(Date.now() - began)}`;
        return this.rec.writeFaults();
      }
      case 'apiserver-restart': {
        const e = this.rec.fault(kind, 'kube-apiserver stopped (SIGTERM) and started again: same flags, port and etcd');
        const began = Date.now();
        await this.t.cluster.restartApiserver();
        e.detail += `; ready again after ${secs(Date.now() - began)}`;
        return this.rec.writeFaults();
      }
      case 'kwok-restart': {
        const e = this.rec.fault(kind, 'KWOK (the kubelet of every GPU node) stopped and started again');
        const began = Date.now();
        await this.t.cluster.restartKwok();
        e.detail += `; running again after ${secs(Date.now() - began)} (it takes the nodes over when their 10 s leases expire)`;
        return this.rec.writeFaults();
      }
      case 'policy-corrupt':
        return this.corruptPolicy();
      case 'cert-rotation':
        return this.rotate();
    }
  }

  private async leaderIdentity(): Promise<string | null> {
    try {
      const lease = await this.t
        .client('admin')
        .makeApiClient(CoordinationV1Api)
        .readNamespacedLease({ name: 'tessera-extender', namespace: 'tessera-system' });
      return lease.spec?.holderIdentity ?? null;
    } catch {
      return null;
    }
  }

  /** The replica the Lease names (its identity ends in the process id). */
  private async leader(): Promise<Replica | undefined> {
    const holder = await this.leaderIdentity();
    return this.t.extenders.find((r) => r.pid !== null && holder?.endsWith(`-${r.pid}`));
  }

  /** Measures the handoff gap after the leader stopped at `at`, once the handoff has had time to finish. */
  private async measureGap(kind: 'rollout' | 'leader-kill', at: number): Promise<string> {
    await new Promise((r) => setTimeout(r, Math.max(0, at + HANDOFF_WINDOW_MS - Date.now())));
    const gap = this.probe.longestBetween(at - 200, at + HANDOFF_WINDOW_MS);
    this.handoffGaps.push({ kind, ms: gap.ms, why: gap.outage?.why ?? null });
    return gap.outage
      ? `; handoff gap ${secs(gap.ms)} (filter calls through the Service failed: ${gap.outage.why.slice(0, 100)})`
      : '; handoff gap 0 s (no filter call through the Service failed)';
  }

  private async rollOutExtenders(): Promise<void> {
    const e = this.rec.fault(
      'extender-rollout',
      'a rolling update of the extender: each replica in turn, the standby first and the leader last, stopped (SIGTERM: it removes its leader label and releases the Lease) and started again, the next one once it is Ready',
    );
    const began = Date.now();
    const leader = await this.leader();
    const order = [...this.t.extenders].sort((a, b) => Number(a === leader) - Number(b === leader));
    this.background(
      (async () => {
        let leaderStoppedAt = 0;
        for (const r of order) {
          if (r === leader) leaderStoppedAt = Date.now();
          await r.stop();
          r.start();
          if (!(await until(() => r.ready(), 90_000))) e.detail += `; ${r.name} not Ready within 90 s`;
        }
        e.detail += `; both replaced and Ready after ${secs(Date.now() - began)}`;
        if (leaderStoppedAt > 0) e.detail += await this.measureGap('rollout', leaderStoppedAt);
        else e.detail += '; no replica led when it began';
        this.rec.writeFaults();
      })(),
    );
  }

  private async killExtenderLeader(): Promise<void> {
    const leader = await this.leader();
    const victim = leader ?? this.t.extenders.find((r) => r.running);
    if (!victim) {
      this.rec.fault('extender-leader-kill', 'no extender replica was running');
      return;
    }
    const pid = victim.kill();
    const down = this.downMs();
    const e = this.rec.fault(
      'extender-leader-kill',
      `SIGKILL to ${victim.name} (pid ${pid}, ${leader ? 'the leader' : 'leader unknown, a running replica'}); it restarts in ${secs(down)}`,
    );
    const killedAt = Date.now();
    this.background(
      (async () => {
        // The standby takes the lease when it expires; the restarted replica may win it instead.
        let next: Replica | undefined;
        await until(async () => {
          const [name] = this.t.extenderProxy.ready();
          next = this.t.extenders.find((r) => r.name === name && r !== victim);
          return next !== undefined || (name !== undefined && victim.running);
        }, 60_000);
        e.detail += next
          ? `; ${next.name} (the standby) led, labelled its pod and was in the Service after ${secs(Date.now() - killedAt)}`
          : victim.running
            ? `; ${victim.name} (restarted) led again`
            : '; no replica led within 60 s';
        if (leader) e.detail += await this.measureGap('leader-kill', killedAt);
        this.rec.writeFaults();
      })(),
    );
    this.background(victim.restartAfter(down));
  }

  private async killWebhook(): Promise<void> {
    const running = this.t.webhooks.filter((r) => r.running);
    const victim = running[this.rng.below(running.length)];
    if (!victim) {
      this.rec.fault('webhook-replica-kill', 'no webhook replica was running');
      return;
    }
    const pid = victim.kill();
    const down = this.downMs();
    const e = this.rec.fault(
      'webhook-replica-kill',
      `SIGKILL to ${victim.name} (pid ${pid}); it restarts in ${secs(down)}`,
    );
    this.background(
      (async () => {
        await victim.restartAfter(down);
        const back = Date.now();
        const ready = await until(() => victim.ready(), 60_000);
        e.detail += ready ? `; ready again ${secs(Date.now() - back)} after its restart` : '; not ready within 60 s';
        this.rec.writeFaults();
      })(),
    );
  }

  private async corruptPolicy(): Promise<void> {
    const c = this.policy.corrupt(this.rng);
    const down = this.downMs();
    const good = this.policy.inForce().revision;
    const e = this.rec.fault(
      'policy-corrupt',
      `${c.file}: ${c.how} (${c.problems[0] ?? 'rejected'}); repaired in ${secs(down)}`,
    );
    this.background(
      (async () => {
        // The stores re-read on directory events and every 5 s: look once they have, before the repair.
        await new Promise((r) => setTimeout(r, Math.min(down - 500, 6_000)));
        const seen: string[] = [];
        for (const w of this.t.webhooks) {
          const s = w.running ? await policyStatus(w.port) : null;
          if (s === null) continue;
          seen.push(`${w.name} ${s.state} at ${s.revision}`);
          if (s.revision !== good)
            this.rec.violation(
              'faults.json',
              'policy-in-force',
              w.name,
              `with ${c.file} broken, ${w.name} reports policy ${s.state} revision ${s.revision}, not the last good ${good}`,
            );
        }
        await new Promise((r) => setTimeout(r, Math.max(0, down - 6_000)));
        this.policy.repair();
        e.detail += `; while broken: ${seen.join(', ') || 'no webhook answered'}; repaired`;
        this.rec.writeFaults();
      })(),
    );
  }

  private async rotate(): Promise<void> {
    const at = new Date();
    const before = caBundle(this.t.certDir);
    const run = await rotateCerts(this.t.certDir, this.o.start, this.rotations++);
    const after = caBundle(this.t.certDir);
    let detail = `tessera certs rotate --now ${run.now}: ${run.output.replace(/\n/g, '; ')}`;
    if (after !== before) {
      await this.t.publishCaBundle(after);
      detail += `; caBundle of both webhook configurations patched (${(after.match(/BEGIN CERTIFICATE/g) ?? []).length} CA(s))`;
    }
    this.rec.fault('cert-rotation', detail, at);
  }
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
