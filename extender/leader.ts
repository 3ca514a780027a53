// Lease-based leader election (coordination.k8s.io/v1): only the replica holding the lease serves kube-scheduler's
// calls (and labels its pod so that the Service sends them to it: role-label.ts), so two replicas never bind at once. A leader that cannot renew before the lease runs out steps down on its own. A replica
// that could not serve (no valid policy, caches not synced) neither takes the lease nor keeps it: otherwise a replica
// started with a broken policy would hold the lease, and every scheduling call would fail while a healthy standby
// waits.

import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export interface LeaderOptions {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseSeconds?: number;
  /** How often the leader renews (default 2 s). */
  readonly retryMs?: number;
  /** How often a standby looks whether the lease is free (default: retryMs): short, so that a released lease is taken
   * at once. */
  readonly standbyRetryMs?: number;
  readonly log: Logger;
  readonly onChange?: (leader: boolean) => void;
  /** Why this replica may not lead now, or null when it may. */
  readonly unfit?: () => string | null;
  /**
   * Why this replica, not leading, should not take the lease now although it could serve (its pod is not Ready, so
   * the Service would not reach it), or null. A leader keeps the lease whatever this says.
   */
  readonly mayNotTake?: () => string | null;
}

/** The Lease calls the elector makes (CoordinationV1Api's), so that tests can hold a Lease in memory. */
export type LeaseApi = Pick<
  CoordinationV1Api,
  'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'
>;

export class LeaderElector {
  private readonly api: LeaseApi;
  private readonly o: LeaderOptions;
  private leading = false;
  /** When the last successful renewal was sent (its renewTime). */
  private renewedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private unfitReason: string | null = null;
  /** The Lease as this replica last wrote it (the API's answer), while it leads. */
  private written: V1Lease | null = null;
  private waitReason: string | null = null;

  constructor(kc: KubeConfig | LeaseApi, options: LeaderOptions) {
    this.api = 'makeApiClient' in kc ? kc.makeApiClient(CoordinationV1Api) : kc;
    this.o = options;
  }

  get isLeader(): boolean {
    // Step down on our own if renewals stopped working: another replica may take over after the lease runs out.
    if (this.leading && Date.now() - this.renewedAt > (this.o.leaseSeconds ?? 15) * 1000 * 0.8) this.set(false);
    return this.leading;
  }

  private set(leader: boolean): void {
    if (!leader) this.written = null;
    if (leader === this.leading) return;
    this.leading = leader;
    this.o.log.info({ identity: this.o.identity, leader }, leader ? 'became leader' : 'stepped down');
    this.o.onChange?.(leader);
  }

  /** One round: take or renew the lease, or give it up when this replica may not lead. */
  async tryOnce(): Promise<void> {
    const unfit = this.o.unfit?.() ?? null;
    if (unfit !== this.unfitReason) {
      if (unfit !== null) this.o.log.warn({ identity: this.o.identity, reason: unfit }, 'may not lead: ' + unfit);
      else this.o.log.info({ identity: this.o.identity }, 'may lead again');
      this.unfitReason = unfit;
    }
    if (unfit !== null) {
      if (this.leading) await this.release();
      return;
    }
    // A restarted container of the old leader's pod has the same identity and would take the lease back at once, while
    // its pod is not Ready: kube-scheduler's calls would find no endpoint until the next readiness probe, when a Ready
    // standby could have served (seen on the real node after a SIGKILL: a 6.1 s gap against 3.4 s).
    const wait = this.leading ? null : (this.o.mayNotTake?.() ?? null);
    if (wait !== this.waitReason) {
      if (wait !== null)
        this.o.log.info({ identity: this.o.identity, reason: wait }, 'waits to take the lease: ' + wait);
      this.waitReason = wait;
    }
    if (wait !== null) return;
    const duration = this.o.leaseSeconds ?? 15;
    const now = new Date();
    const spec = {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: duration,
      renewTime: new V1MicroTime(now.getTime()),
    };
    // A leader renews on the Lease it last wrote, in one call: if anyone else wrote since, the resourceVersion no
    // longer matches and it reads and decides again below. Reading first doubled the calls per renewal, and on a
    // loaded API server (load average 18 on the real node) a read-then-write round took long enough that the leader
    // stepped down and took the lease back every 1.5-2 s, each time removing its label from the Service's endpoint.
    // client-go's leader election renews the same way (tryAcquireOrRenew's optimistic update).
    if (this.leading && this.written) {
      try {
        this.written = await this.api.replaceNamespacedLease({
          name: this.o.name,
          namespace: this.o.namespace,
          body: { ...this.written, spec: { ...this.written.spec, ...spec } },
        });
        this.renewedAt = now.getTime();
        return;
      } catch (e) {
        this.written = null;
        if ((e as { code?: number }).code !== 409) throw e;
      }
    }
    let lease: V1Lease | null = null;
    try {
      lease = await this.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
    } catch (e) {
      if ((e as { code?: number }).code !== 404) throw e;
    }
    if (lease === null) {
      this.written = await this.api.createNamespacedLease({
        namespace: this.o.namespace,
        body: {
          metadata: { name: this.o.name, namespace: this.o.namespace },
          spec: { ...spec, acquireTime: new V1MicroTime(now.getTime()), leaseTransitions: 0 },
        },
      });
      this.renewedAt = now.getTime();
      this.set(true);
      return;
    }
    const holder = lease.spec?.holderIdentity;
    const renewed = lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : 0;
    const expired = renewed + (lease.spec?.leaseDurationSeconds ?? duration) * 1000 < now.getTime();
    if (holder !== this.o.identity && !expired) {
      this.set(false);
      return;
    }
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === this.o.identity ? 0 : 1);
    // Replace with the resourceVersion we read: if another replica renewed in between, this fails and we stay follower.
    this.written = await this.api.replaceNamespacedLease({
      name: this.o.name,
      namespace: this.o.namespace,
      body: {
        ...lease,
        spec: {
          ...lease.spec,
          ...spec,
          leaseTransitions: transitions,
          ...(holder === this.o.identity ? {} : { acquireTime: new V1MicroTime(now.getTime()) }),
        },
      },
    });
    // From when the renewal was asked for, not answered: the Lease says renewTime = now, and a slow answer must not
    // stretch this replica's belief past the moment another may take over (renewTime + leaseSeconds).
    this.renewedAt = now.getTime();
    this.set(true);
  }

  start(): void {
    const loop = async () => {
      if (this.stopped) return;
      const started = Date.now();
      try {
        await this.tryOnce();
      } catch (e) {
        this.o.log.debug({ err: e instanceof Error ? e.message : String(e) }, 'lease attempt failed');
        if (this.leading && Date.now() - this.renewedAt > (this.o.leaseSeconds ?? 15) * 1000 * 0.8) this.set(false);
      }
      const every = this.leading ? (this.o.retryMs ?? 2000) : (this.o.standbyRetryMs ?? this.o.retryMs ?? 2000);
      // On a fixed cadence from the start of each attempt: a slow API call does not push the next renewal later.
      if (!this.stopped) this.timer = setTimeout(loop, Math.max(0, every - (Date.now() - started)));
    };
    void loop();
  }

  /** Gives the lease up so that a successor does not wait for it to expire. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.leading) await this.release();
  }

  private async release(): Promise<void> {
    this.set(false);
    try {
      const lease = await this.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
      if (lease.spec?.holderIdentity === this.o.identity) {
        await this.api.replaceNamespacedLease({
          name: this.o.name,
          namespace: this.o.namespace,
          body: { ...lease, spec: { ...lease.spec, renewTime: new V1MicroTime(0), leaseDurationSeconds: 1 } },
        });
      }
    } catch {
      // best effort: the lease expires anyway
    }
  }
}
