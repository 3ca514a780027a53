// The tenants at work: submissions from the seeded WorkloadStream at a steady mean rate (Poisson arrivals), each as its
// tenant's user, and every so often a burst of them in the same second across a tenant's namespaces; early deletions when the user changes their mind; finished bare pods deleted by their user a few
// seconds later. Denials by the webhook are the system working and are counted by cause, as are requests that failed
// because a component was down during a fault.

import { BatchV1Api, CoreV1Api, type KubeConfig, type V1Job, type V1Pod } from '@kubernetes/client-node';
import { NAMESPACES } from './topology.ts';
import type { Submission, WorkloadStream } from './workloads.ts';

/** Why a create did not go through. */
export type Refusal =
  | 'quota'
  | 'policy'
  | 'no-policy'
  | 'webhook-unreachable'
  | 'webhook-tls'
  | 'api-unavailable'
  | 'forbidden'
  | 'other';

/** Refusals that are not Tessera judging the pod but a component being down or restarting. */
export const OUTAGE_REFUSALS: readonly Refusal[] = [
  'no-policy',
  'webhook-unreachable',
  'webhook-tls',
  'api-unavailable',
  'forbidden',
];

export interface RefusalDetail {
  readonly cause: Refusal;
  /** For policy denials: the rules named. */
  readonly rules: readonly string[];
  readonly message: string;
}

/** Reads an API error: a webhook denial names its rules in brackets ("- [tessera/quota] ..."). */
export function classifyRefusal(e: unknown): RefusalDetail {
  const err = e as { code?: number | string; body?: unknown; message?: string; cause?: { code?: string } };
  let text = typeof err.body === 'string' ? err.body : err.body ? JSON.stringify(err.body) : '';
  try {
    text = (JSON.parse(text) as { message?: string }).message ?? text;
  } catch {
    // not JSON
  }
  const message = (text || err.message || String(e)).slice(0, 400);
  if (
    typeof err.code !== 'number' ||
    /ECONNREFUSED|ECONNRESET|socket hang up|EPIPE|ETIMEDOUT|apiserver is shutting down/.test(message)
  )
    return { cause: 'api-unavailable', rules: [], message };
  // The API server could not trust the webhook's serving certificate: a rotation that was not seamless.
  if (/failed calling webhook/.test(message) && /x509|certificate/i.test(message))
    return { cause: 'webhook-tls', rules: [], message };
  if (/failed calling webhook/.test(message)) return { cause: 'webhook-unreachable', rules: [], message };
  // RBAC denying the tenants their own namespaces: seen for a moment after a kube-apiserver restart, before its
  // authorizer's caches are filled although /readyz already passes.
  if (err.code === 403 && /is forbidden: User .* cannot/.test(message))
    return { cause: 'forbidden', rules: [], message };
  if (/has no valid policy in force/.test(message)) return { cause: 'no-policy', rules: [], message };
  const rules = [...new Set([...message.matchAll(/- \[([^\]]+)\]/g)].map((m) => m[1]!))];
  if (rules.length === 0) return { cause: 'other', rules, message };
  if (rules.every((r) => r === 'tessera/quota')) return { cause: 'quota', rules, message };
  return { cause: 'policy', rules: rules.filter((r) => r !== 'tessera/quota'), message };
}

export interface LoadStats {
  arrivals: number;
  admittedPods: number;
  admittedJobs: number;
  /** Bad submissions (that a rule must deny) that were admitted: a violation. */
  badAdmitted: string[];
  refused: Record<Refusal, number>;
  /** Policy denials by rule. */
  rules: Record<string, number>;
  /** Refusal times by cause, for telling which fault they followed. */
  refusalTimes: { time: number; cause: Refusal }[];
  earlyDeletes: number;
  cleanedUp: number;
  /** Pods KWOK lost (never started, or still Running long past their run time), deleted by their user. */
  hung: string[];
  /** A sample of unexplained refusals. */
  otherSamples: string[];
  /** Bursts of same-second submissions (workloads.ts burst): how many, and how their creates ended. */
  bursts: number;
  burstSubmissions: number;
  burstAdmitted: number;
  burstRefusedForQuota: number;
}

export interface LoadOptions {
  readonly ratePerSecond: number;
  /** At most this many creates in flight; arrivals wait beyond it. */
  readonly maxInFlight: number;
  readonly client: (user: string) => KubeConfig;
  /** A burst of this many submissions every `burstEveryMs` (0: none). */
  readonly burstSize?: number;
  readonly burstEveryMs?: number;
}

export class LoadGenerator {
  readonly stats: LoadStats = {
    arrivals: 0,
    admittedPods: 0,
    admittedJobs: 0,
    badAdmitted: [],
    refused: {
      quota: 0,
      policy: 0,
      'no-policy': 0,
      'webhook-unreachable': 0,
      'webhook-tls': 0,
      'api-unavailable': 0,
      forbidden: 0,
      other: 0,
    },
    rules: {},
    refusalTimes: [],
    earlyDeletes: 0,
    cleanedUp: 0,
    hung: [],
    otherSamples: [],
    bursts: 0,
    burstSubmissions: 0,
    burstAdmitted: 0,
    burstRefusedForQuota: 0,
  };
  /** Names of pods their user deleted on purpose (namespace/name). */
  readonly userDeleted = new Set<string>();
  private readonly stream: WorkloadStream;
  private readonly o: LoadOptions;
  private readonly core = new Map<string, CoreV1Api>();
  private readonly batch = new Map<string, BatchV1Api>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private inFlight = 0;
  private burstTimer: NodeJS.Timeout | null = null;
  private running = false;
  private loop: Promise<void> | null = null;

  constructor(stream: WorkloadStream, options: LoadOptions) {
    this.stream = stream;
    this.o = options;
    for (const { user } of Object.values(NAMESPACES)) {
      if (this.core.has(user)) continue;
      const kc = options.client(user);
      this.core.set(user, kc.makeApiClient(CoreV1Api));
      this.batch.set(user, kc.makeApiClient(BatchV1Api));
    }
  }

  private userOf(namespace: string): string {
    return NAMESPACES[namespace]!.user;
  }

  /** Creates one submission as its tenant's user; true when admitted. */
  async submit(s: Submission): Promise<boolean> {
    const user = this.userOf(s.namespace);
    try {
      if (s.kind === 'job')
        await this.batch.get(user)!.createNamespacedJob({ namespace: s.namespace, body: s.body as V1Job });
      else await this.core.get(user)!.createNamespacedPod({ namespace: s.namespace, body: s.body as V1Pod });
    } catch (e) {
      const r = classifyRefusal(e);
      this.stats.refused[r.cause]++;
      this.stats.refusalTimes.push({ time: Date.now(), cause: r.cause });
      for (const rule of r.rules) this.stats.rules[rule] = (this.stats.rules[rule] ?? 0) + 1;
      if (r.cause === 'other' && this.stats.otherSamples.length < 10)
        this.stats.otherSamples.push(`${s.namespace}/${s.name}: ${r.message}`);
      return false;
    }
    if (s.bad) this.stats.badAdmitted.push(`${s.namespace}/${s.name} (${s.shape})`);
    if (s.kind === 'job') this.stats.admittedJobs++;
    else this.stats.admittedPods++;
    if (s.deleteAfterMs !== null) this.later(s.deleteAfterMs, () => this.deleteEarly(s));
    return true;
  }

  private later(ms: number, run: () => Promise<void>): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      void run();
    }, ms);
    this.timers.add(t);
  }

  private async deleteEarly(s: Submission, attempt = 0): Promise<void> {
    const key = `${s.namespace}/${s.name}`;
    this.userDeleted.add(key);
    try {
      await this.core.get(this.userOf(s.namespace))!.deleteNamespacedPod({ name: s.name, namespace: s.namespace });
      this.stats.earlyDeletes++;
    } catch (e) {
      // Already gone (finished and cleaned up, or preempted): nothing to do. Refused while a fault lasts (the API server
      // restarting): the user tries again, as they would; a pod that never fits would otherwise stay for good (seen in
      // a 15-minute soak: its deletion fell into the API server's restart).
      if ((e as { code?: number }).code !== 404 && attempt < 60)
        this.later(2_000, () => this.deleteEarly(s, attempt + 1));
    }
  }

  /** A pod that should have ended long ago: its user deletes it, as they would a hung job. */
  async deleteHung(namespace: string, name: string): Promise<void> {
    const key = `${namespace}/${name}`;
    if (this.userDeleted.has(key)) return;
    this.userDeleted.add(key);
    this.stats.hung.push(key);
    try {
      await this.core.get(this.userOf(namespace))!.deleteNamespacedPod({ name, namespace });
    } catch {
      this.userDeleted.delete(key);
      this.stats.hung.pop();
    }
  }

  /** A finished bare pod: its user deletes it a few seconds later. */
  cleanUpLater(namespace: string, name: string, ms = 5_000): void {
    this.later(ms, async () => {
      try {
        await this.core.get(this.userOf(namespace))!.deleteNamespacedPod({ name, namespace });
        this.stats.cleanedUp++;
      } catch (e) {
        if ((e as { code?: number }).code !== 404) this.cleanUpLater(namespace, name, 10_000);
      }
    });
  }

  /** Creates a burst all at once (not limited by maxInFlight: the point is that they race). */
  private async burst(size: number): Promise<void> {
    const batch = this.stream.burst(size);
    this.stats.bursts++;
    this.stats.burstSubmissions += batch.length;
    this.stats.arrivals += batch.length;
    const quotaBefore = this.stats.refused.quota;
    this.inFlight += batch.length;
    const admitted = await Promise.all(batch.map((s) => this.submit(s).finally(() => this.inFlight--)));
    this.stats.burstAdmitted += admitted.filter(Boolean).length;
    this.stats.burstRefusedForQuota += this.stats.refused.quota - quotaBefore;
  }

  /** Submits at the mean rate until stop(). */
  start(): void {
    this.running = true;
    const every = this.o.burstEveryMs ?? 0;
    if (every > 0 && (this.o.burstSize ?? 0) > 0) {
      const t = setInterval(() => {
        if (this.running) void this.burst(this.o.burstSize!);
      }, every);
      this.timers.add(t);
      this.burstTimer = t;
    }
    this.loop = (async () => {
      let next = Date.now();
      while (this.running) {
        next += this.stream.gapMs(this.o.ratePerSecond);
        const wait = next - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        while (this.running && this.inFlight >= this.o.maxInFlight) await new Promise((r) => setTimeout(r, 20));
        if (!this.running) break;
        const s = this.stream.next();
        this.stats.arrivals++;
        this.inFlight++;
        void this.submit(s).finally(() => this.inFlight--);
      }
    })();
  }

  /** Stops submitting and waits for the creates in flight. Deletions already planned still happen. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.burstTimer !== null) {
      clearInterval(this.burstTimer);
      this.timers.delete(this.burstTimer);
    }
    await this.loop;
    while (this.inFlight > 0) await new Promise((r) => setTimeout(r, 50));
  }

  /** Drops planned deletions (teardown). */
  cancelTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
