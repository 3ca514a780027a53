// Reserves a GPU pod's quota on the API server before the webhook admits it (core/admission/quota-reservations.ts
// says why and how it is counted). Reviews that arrive together are settled together, as kube-apiserver's quota
// admission batches them (k8s.io/apiserver@v0.37.2 pkg/admission/plugin/resourcequota/controller.go): one fresh read,
// each decided in turn on the running total, one conditional write. A conflict (another replica wrote first) re-reads and
// decides again, with jittered exponential backoff, together with the reviews that arrived meanwhile (one write for all
// of them, so a replica that lost a race does not then need a write per burst), until the review's deadline. Anything
// else fails closed: the pod is denied with the reason, never admitted unreserved.

import type { Logger } from 'pino';
import {
  DEFAULT_RESERVATION_TTL_MS,
  DEFAULT_SETTLE_MS,
  decideReservation,
  type Reservation,
  type ShownByInformer,
} from '../core/admission/quota-reservations.ts';
import type { QuotaNeed } from '../core/admission/rules/quota.ts';
import type { TenantUsage } from '../core/admission/tenant-usage.ts';
import type { WebhookMetrics } from './metrics.ts';
import { ReservationConflict, type ReservationObject, type ReservationStore } from './reservation-store.ts';

export type ReserveOutcome =
  | { readonly ok: true }
  /** The pod does not fit: a quota denial (403). */
  | { readonly ok: false; readonly unavailable: false; readonly message: string }
  /** The reservation could not be made (API unavailable, conflicts, deadline): fail closed (503). */
  | { readonly ok: false; readonly unavailable: true; readonly message: string };

export interface QuotaReserverOptions {
  readonly store: ReservationStore;
  readonly log: Logger;
  readonly metrics?: WebhookMetrics;
  readonly ttlMs?: number;
  /** See DEFAULT_SETTLE_MS. */
  readonly settleMs?: number;
  /** Conditional writes tried per batch before giving up; the deadline is the real bound, this one stops a hot loop. */
  readonly maxAttempts?: number;
  /** A review waits at most this long for its reservation (the shipped webhook timeoutSeconds is 5). */
  readonly deadlineMs?: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

/** What the informer shows now: which reserved pods it has, and what the tenant's pods in it hold. */
export interface InformerNow {
  readonly shown: ShownByInformer;
  readonly usage: () => TenantUsage;
}

interface Waiter {
  readonly need: QuotaNeed;
  readonly shown: ShownByInformer;
  readonly usage: () => TenantUsage;
  readonly dryRun: boolean;
  readonly since: number;
  readonly resolve: (o: ReserveOutcome) => void;
}

export class QuotaReserver {
  private readonly o: Required<Omit<QuotaReserverOptions, 'metrics'>> & { metrics?: WebhookMetrics };
  private queue: Waiter[] = [];
  private draining = false;

  constructor(options: QuotaReserverOptions) {
    this.o = {
      ttlMs: DEFAULT_RESERVATION_TTL_MS,
      settleMs: DEFAULT_SETTLE_MS,
      maxAttempts: 24,
      deadlineMs: 4_000,
      now: Date.now,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      random: Math.random,
      ...options,
    };
  }

  /** Reserves `need` (dry run: only checks it) on the API server; resolves once the write is confirmed or refused. */
  reserve(need: QuotaNeed, informer: InformerNow, dryRun: boolean): Promise<ReserveOutcome> {
    return new Promise((resolve) => {
      const started = process.hrtime.bigint();
      this.queue.push({
        need,
        shown: informer.shown,
        usage: informer.usage,
        dryRun,
        since: this.o.now(),
        resolve: (outcome) => {
          const label = outcome.ok ? (dryRun ? 'dry-run' : 'reserved') : outcome.unavailable ? 'unavailable' : 'denied';
          this.o.metrics?.quotaReservations.inc({ outcome: label });
          this.o.metrics?.quotaReservationSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
          resolve(outcome);
        },
      });
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        await this.settle(batch);
      }
    } finally {
      this.draining = false;
    }
  }

  private async settle(batch: Waiter[]): Promise<void> {
    let waiting = batch;
    for (let attempt = 1; waiting.length > 0; attempt++) {
      const now = this.o.now();
      const late = waiting.filter((w) => now - w.since > this.o.deadlineMs);
      for (const w of late)
        w.resolve(this.unavailable(w, `no reservation within ${this.o.deadlineMs / 1000} s of concurrent updates`));
      waiting = waiting.filter((w) => !late.includes(w));
      if (waiting.length === 0) return;
      if (attempt > this.o.maxAttempts) {
        for (const w of waiting)
          w.resolve(this.unavailable(w, `${this.o.maxAttempts} conflicting updates in a row (too many at once)`));
        return;
      }
      let current: ReservationObject;
      try {
        // Always the object as it is now: a replica that trusted its own last write would win every race against one
        // that must read after a conflict, and starve it under sustained load (seen in the benchmark).
        current = await this.o.store.read();
      } catch (e) {
        for (const w of waiting) w.resolve(this.unavailable(w, (e as Error).message));
        return;
      }
      // Each review in turn, on the running total of those before it.
      let reservations: readonly Reservation[] = current.reservations;
      const admitted: Waiter[] = [];
      for (const w of waiting) {
        let decision: ReturnType<typeof decideReservation>;
        try {
          // The informer's usage and what it shows, read in the same turn of the event loop as each other.
          decision = decideReservation(
            reservations,
            w.need,
            this.o.now(),
            this.o.ttlMs,
            w.shown,
            this.o.settleMs,
            w.usage(),
          );
        } catch (e) {
          // The informer view can fail closed (API server lost) between validation and here.
          w.resolve(this.unavailable(w, (e as Error).message));
          continue;
        }
        if (!decision.ok) w.resolve({ ok: false, unavailable: false, message: decision.message });
        else if (w.dryRun) w.resolve({ ok: true });
        else {
          reservations = decision.next;
          admitted.push(w);
        }
      }
      if (admitted.length === 0) return;
      try {
        await this.o.store.write(reservations, current.resourceVersion);
        for (const w of admitted) w.resolve({ ok: true });
        return;
      } catch (e) {
        if (!(e instanceof ReservationConflict)) {
          for (const w of admitted) w.resolve(this.unavailable(w, (e as Error).message));
          return;
        }
        this.o.metrics?.quotaReservationConflicts.inc();
        // Full jitter keeps the replicas from colliding in step. Then decide again on what the other writer left, with
        // what arrived meanwhile (in arrival order, after these).
        await this.o.sleep(this.o.random() * Math.min(200, 5 * 2 ** (attempt - 1)));
        waiting = [...admitted, ...this.queue.splice(0)];
      }
    }
  }

  private unavailable(w: Waiter, why: string): ReserveOutcome {
    this.o.log.warn({ tenant: w.need.tenant, pod: w.need.pod, why }, 'quota reservation failed; pod denied');
    return {
      ok: false,
      unavailable: true,
      message: `Tessera could not reserve GPU quota for tenant ${w.need.tenant} (${why}), so the pod was denied to keep the quota exact (fail closed). Retry shortly; if this persists, check that the webhook reaches the API server and may get and update ConfigMap ${this.o.store.where}`,
    };
  }
}
