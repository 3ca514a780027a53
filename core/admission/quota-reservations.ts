// Admission-time quota that holds across webhook replicas and informer lag, the way kube-apiserver's ResourceQuota
// admission does it (k8s.io/apiserver@v0.37.2 pkg/admission/plugin/resourcequota/controller.go: check, then write the
// new usage with a resourceVersion precondition before admitting; dry-run requests write nothing). Tessera's quota
// spans namespaces, so the usage lives in one ConfigMap in Tessera's namespace: a reservation per admitted GPU pod,
// written before the pod is admitted. A tenant holds what its pods in the informer hold plus the reservations of
// pods the informer does not show yet. A reservation is dropped once the writer's informer has shown its pod and it is
// older than a settle time (10 s: by then every replica's informer shows the pod), and in any case after a TTL (60 s),
// which releases the quota of a pod that was never created (a later webhook's denial, a failed create, a timeout). Pure: the webhook does the reads and the conditional writes (webhook/quota-reserver.ts).

import { withinQuota } from '../pools/equivalents.ts';
import { quotaExceededMessage, type QuotaNeed } from './rules/quota.ts';
import type { TenantUsage } from './tenant-usage.ts';

export const RESERVATIONS_CONFIGMAP = 'tessera-quota-reservations';
/** The ConfigMap's data key holding the reservations as JSON. */
export const RESERVATIONS_KEY = 'reservations';
export const DEFAULT_RESERVATION_TTL_MS = 60_000;
/** A reservation whose pod the writer's informer shows is dropped once it is this old (every informer shows it). */
export const DEFAULT_SETTLE_MS = 10_000;

export interface Reservation {
  readonly uid: string;
  readonly tenant: string;
  /** `namespace/name` of the pod. */
  readonly pod: string;
  readonly equivalents: number;
  /** Epoch milliseconds when it was written. */
  readonly at: number;
  /** Epoch milliseconds after which the reservation no longer counts and is dropped at the next write. */
  readonly expires: number;
}

const isReservation = (r: unknown): r is Reservation => {
  const x = r as Partial<Reservation> | null;
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof x.uid === 'string' &&
    typeof x.tenant === 'string' &&
    typeof x.pod === 'string' &&
    typeof x.equivalents === 'number' &&
    Number.isFinite(x.equivalents) &&
    typeof x.expires === 'number' &&
    typeof x.at === 'number'
  );
};

/** The reservations of the ConfigMap's data; unreadable entries are dropped (they are at most a TTL old). */
export function parseReservations(data: Readonly<Record<string, string>> | undefined): Reservation[] {
  const text = data?.[RESERVATIONS_KEY];
  if (text === undefined || text === '') return [];
  try {
    const raw: unknown = JSON.parse(text);
    return Array.isArray(raw) ? raw.filter(isReservation) : [];
  } catch {
    return [];
  }
}

export function formatReservations(reservations: readonly Reservation[]): Record<string, string> {
  return { [RESERVATIONS_KEY]: JSON.stringify(reservations) };
}

/** Whether the informer shows the reserved pod (then it is counted there, or is terminated and holds nothing). */
export type ShownByInformer = (r: Reservation) => boolean;

/** GPU-equivalents of the tenant's live reservations that the informer does not show yet, except `exceptUid`. */
export function reservedBeyondInformer(
  reservations: readonly Reservation[],
  tenant: string,
  now: number,
  shown: ShownByInformer,
  exceptUid: string,
): { equivalents: number; pods: number } {
  let equivalents = 0;
  let pods = 0;
  for (const r of reservations) {
    if (r.tenant !== tenant || r.uid === exceptUid || r.expires <= now || shown(r)) continue;
    equivalents += r.equivalents;
    pods++;
  }
  return { equivalents, pods };
}

export type ReservationDecision =
  | { readonly ok: true; readonly next: readonly Reservation[]; readonly held: number }
  | { readonly ok: false; readonly held: number; readonly message: string };

/**
 * Whether the pod fits its tenant's quota given the informer's pods and the current reservations; if it does, the
 * reservations to write (expired ones dropped, this pod's added or renewed).
 */
export function decideReservation(
  current: readonly Reservation[],
  need: QuotaNeed,
  now: number,
  ttlMs: number,
  shown: ShownByInformer,
  settleMs: number = DEFAULT_SETTLE_MS,
  /**
   * What the informer's pods of the tenant hold now, read together with `shown`: a pod that appeared in the informer
   * since validation is then counted there, not lost between the two (need.held is from validation time).
   */
  informer: TenantUsage = need.held,
): ReservationDecision {
  const pending = reservedBeyondInformer(current, need.tenant, now, shown, need.uid);
  const held = informer.equivalents + pending.equivalents;
  if (!withinQuota(held, need.equivalents, need.quota)) {
    const holders =
      pending.pods > 0 ? `${informer.pods} pod(s) and ${pending.pods} pod(s) just admitted` : `${informer.pods} pod(s)`;
    return { ok: false, held, message: quotaExceededMessage(need, held, holders) };
  }
  // Kept: live reservations, except those the informer has shown long enough to count the pod everywhere (this keeps
  // the object small at high rates; the TTL alone would keep a minute of admissions).
  const next = current.filter((r) => r.expires > now && r.uid !== need.uid && !(now - r.at >= settleMs && shown(r)));
  next.push({
    uid: need.uid,
    tenant: need.tenant,
    pod: need.pod,
    equivalents: need.equivalents,
    at: now,
    expires: now + ttlMs,
  });
  return { ok: true, next, held };
}
