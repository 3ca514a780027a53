// The fault injector: carries out the plan (fault-plan.ts) one fault at a time, as an operator's bad day would, and
// logs each in faults.json. Killed replicas come back after a delay, as a Deployment brings them back; a corrupted
// policy file is repaired after a while; certificates rotate with `tessera certs rotate` and the platform then publishes
// the new CA bundle in the webhook configurations.

import { get } from 'node:https';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { SeededRandom } from '../../core/simulation/random.ts';
import { caBundle, rotateCerts } from './certs.ts';
import type { FaultKind, PlannedFault } from './fault-plan.ts';
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

export class FaultInjector {
  readonly counts: Partial<Record<FaultKind, number>> = {};
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
  }

  private async inject(kind: FaultKind): Promise<void> {
    switch (kind) {
      case 'extender-leader-kill':
        return this.killExtenderLeader();
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

  private async killExtenderLeader(): Promise<void> {
    // The ready replica is the leader; while none is ready, the Lease says who holds it.
    let leader: Replica | undefined;
    for (const r of this.t.extenders) if (await r.ready()) leader = r;
    if (!leader) {
      const holder = await this.leaderIdentity();
      leader = this.t.extenders.find((r) => r.pid !== null && holder?.endsWith(`-${r.pid}`));
    }
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
          for (const r of this.t.extenders) if (r.running && (await r.ready())) next = r;
          return next !== undefined;
        }, 60_000);
        e.detail += next
          ? `; ${next.name}${next === victim ? ' (restarted)' : ' (the standby)'} led and served after ${secs(Date.now() - killedAt)}`
          : '; no replica led within 60 s';
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
