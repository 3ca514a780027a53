// kube-scheduler's view of the extender during the soak: a filter call for a small GPU pod through the extender's
// Service stand-in every 100 ms, on a kept-alive connection as kube-scheduler's client makes them. A call that fails
// (no endpoint, a reset connection, no answer within the 2 s httpTimeout, or an Error in the answer) is an outage. The
// handoff gap of a rollout or a leader kill is the longest outage in the seconds after the leader stopped, counted from
// when it stopped.

export interface Outage {
  /** ms since the epoch: the first failed call, and the first call that succeeded after it (null while it lasts). */
  readonly from: number;
  to: number | null;
  /** What the first failed call got. */
  readonly why: string;
  /** What the last failed call got (the cause can change within one outage). */
  lastWhy?: string;
}

const ARGS = JSON.stringify({
  Pod: {
    metadata: { name: 'handoff-probe', namespace: 'vision', uid: 'handoff-probe' },
    spec: { containers: [{ name: 'c', image: 'x', resources: { limits: { 'nvidia.com/gpu': '1' } } }] },
  },
  Nodes: null,
  NodeNames: [],
});

/** One filter call: null when it succeeded, else what it got. */
export type FilterCall = (args: string) => Promise<string | null>;

/** A filter call to an extender on plain HTTP at 127.0.0.1:port (the soak's Service stand-in). */
export function loopbackFilter(port: number): FilterCall {
  const url = `http://127.0.0.1:${port}/filter`;
  return async (args) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: args,
      signal: AbortSignal.timeout(2_000),
    });
    const body = (await res.json()) as { Error?: string };
    return !res.ok || (body.Error ?? '') !== '' ? body.Error || `HTTP ${res.status}` : null;
  };
}

export class HandoffProbe {
  readonly outages: Outage[] = [];
  /** Calls made, and calls that failed. */
  calls = 0;
  failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly call: FilterCall;

  /** A port of the soak's Service stand-in, or any filter call (the real node's Service, over TLS). */
  constructor(target: number | FilterCall) {
    this.call = typeof target === 'number' ? loopbackFilter(target) : target;
  }

  private async once(): Promise<void> {
    const at = Date.now();
    let why: string | null = null;
    try {
      why = await this.call(ARGS);
    } catch (e) {
      why = e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e);
    }
    this.calls++;
    if (why !== null) this.failures++;
    const open = this.outages.at(-1);
    if (why === null) {
      if (open && open.to === null) open.to = at;
    } else if (!open || open.to !== null) this.outages.push({ from: at, to: null, why, lastWhy: why });
    else open.lastWhy = why;
  }

  start(everyMs = 100): void {
    const loop = async () => {
      await this.once();
      if (this.timer !== null) this.timer = setTimeout(() => void loop(), everyMs);
    };
    this.timer = setTimeout(() => void loop(), 0);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * The longest outage in [from, to] (ms), counted from `from` when it had begun before (another fault's outage still
   * under way when the leader stopped counts from then on), an outage still open counting until now; 0 when none.
   */
  longestBetween(from: number, to: number): { ms: number; outage: Outage | null } {
    let best: { ms: number; outage: Outage | null } = { ms: 0, outage: null };
    for (const o of this.outages) {
      const end = o.to ?? Date.now();
      if (o.from > to || end < from) continue;
      const ms = end - Math.max(o.from, from);
      if (ms > best.ms) best = { ms, outage: o };
    }
    return best;
  }
}
