// What a benchmark phase asked of the API server: kube-apiserver's own counters (apiserver_request_total by verb,
// resource and subresource; apiserver_watch_events_total and the bytes they carried, by kind), read before and after
// the phase and subtracted. It names the writes and watch traffic behind the API server's CPU: binds, status patches,
// events, leases, lists.

import { request } from 'node:https';

export type Counters = Map<string, number>;

/** The API server's request and watch-event counters now (needs a token allowed to GET /metrics). */
export async function apiserverCounters(server: string, token: string): Promise<Counters> {
  const text = await new Promise<string>((resolve, reject) => {
    const req = request(
      `${server}/metrics`,
      { headers: { authorization: `Bearer ${token}` }, rejectUnauthorized: false, timeout: 20_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString()));
      },
    );
    req.on('timeout', () => req.destroy(new Error('GET /metrics timed out')));
    req.on('error', reject);
    req.end();
  });
  const out: Counters = new Map();
  const add = (key: string, v: number) => out.set(key, (out.get(key) ?? 0) + v);
  for (const line of text.split('\n')) {
    const m =
      /^(apiserver_request_total|apiserver_watch_events_total|apiserver_watch_events_sizes_sum)\{(.*)\} (\S+)$/.exec(
        line,
      );
    if (!m) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    const value = Number(m[3]);
    if (m[1] === 'apiserver_request_total') {
      const what = `${labels.resource}${labels.subresource ? `/${labels.subresource}` : ''}`;
      add(`${labels.verb} ${what}`, value);
    } else {
      add(
        `${m[1] === 'apiserver_watch_events_total' ? 'watch events' : 'watch bytes'} ${labels.kind ?? labels.resource}`,
        value,
      );
    }
  }
  return out;
}

/** The counters that grew between two readings, the largest first, as "what n" (per pod when `pods` is given). */
export function grewBy(before: Counters, after: Counters, pods: number, top = 14): string {
  return [...after]
    .map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const)
    .filter(([k, d]) => d > 0 && !k.startsWith('watch bytes'))
    .sort(([, a], [, b]) => b - a)
    .slice(0, top)
    .map(([k, d]) => {
      const bytes = k.startsWith('watch events') ? after.get(k.replace('watch events', 'watch bytes')) : undefined;
      const sent =
        bytes === undefined
          ? ''
          : ` (${((bytes - (before.get(k.replace('watch events', 'watch bytes')) ?? 0)) / d).toFixed(0)} B each)`;
      return `${k} ${d} (${(d / pods).toFixed(2)}/pod)${sent}`;
    })
    .join(', ');
}
