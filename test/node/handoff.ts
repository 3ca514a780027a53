// The extender's handoff on the real node, seen two ways while a fault or an upgrade runs:
// - kube-scheduler's view: a filter call through the extender's Service every 100 ms from the host (kube-proxy's
//   rules carry the ClusterIP to the labelled leader pod), over TLS with the chart's CA and the name kube-scheduler
//   checks, on a kept-alive connection as kube-scheduler's client makes them. The handoff gap is the longest run of
//   failed calls (the soak's definition, test/soak/handoff-probe.ts; docs/operations.md).
// - a GPU pod's view: a small fraction pod submitted every second on the KWOK fraction nodes, each timed from its
//   create call to the watch first seeing it bound. The longest wait includes kube-scheduler's own retry backoff
//   (podMaxBackoffSeconds: 2 in the shipped configuration).

import { Agent, request } from 'node:https';
import { type CoreV1Api, type DiscoveryV1Api, type KubeConfig, type V1Pod, Watch } from '@kubernetes/client-node';
import { type FilterCall, HandoffProbe } from '../soak/handoff-probe.ts';
import type { NodeStack } from './harness.ts';

const EXTENDER_NAME = 'tessera-extender.tessera-system.svc';

/** A filter call to the extender's Service by its ClusterIP, checked against the chart's CA as kube-scheduler does. */
export async function extenderServiceFilter(stack: NodeStack, core: CoreV1Api): Promise<FilterCall> {
  const svc = await core.readNamespacedService({ name: 'tessera-extender', namespace: 'tessera-system' });
  const ip = svc.spec!.clusterIP!;
  const ca = Buffer.from(
    stack.kubectl(['-n', 'tessera-system', 'get', 'secret', 'tessera-extender-tls', '-o', 'jsonpath={.data.ca\\.crt}']),
    'base64',
  ).toString('utf8');
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca, servername: EXTENDER_NAME });
  return (args) =>
    new Promise((resolve, reject) => {
      const req = request(
        {
          host: ip,
          port: 8443,
          path: '/scheduler/filter',
          method: 'POST',
          agent,
          servername: EXTENDER_NAME,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(args) },
          timeout: 2_000,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            body += c;
          });
          res.on('end', () => {
            let error = '';
            try {
              error = (JSON.parse(body) as { Error?: string }).Error ?? '';
            } catch {
              error = `not JSON: ${body.slice(0, 80)}`;
            }
            resolve(res.statusCode === 200 && error === '' ? null : error || `HTTP ${res.statusCode}`);
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 2 s (kube-scheduler’s httpTimeout)')));
      req.on('error', reject);
      req.end(args);
    });
}

/** The probe through the real Service, started; stop() it when done. */
export async function startServiceProbe(stack: NodeStack, core: CoreV1Api): Promise<HandoffProbe> {
  const probe = new HandoffProbe(await extenderServiceFilter(stack, core));
  probe.start(100);
  return probe;
}

export interface PodWaits {
  /** Pods created so far, and create calls the API refused (tried again a second later). */
  readonly created: string[];
  readonly refusedCreates: string[];
  /** Longest wait of an admitted pod, from its create call returning to being seen bound (a pod still unbound counts
   * until now), and which pod. */
  longest(): { ms: number; pod: string };
  /** Longest create call (admission: the webhook through its Service). */
  longestAdmission(): { ms: number; pod: string };
  /** Every pod created is bound. */
  allBound(): boolean;
  stop(): Promise<void>;
}

/**
 * Submits a `fraction` GPU pod every `everyMs` in `namespace` (a tenant's, which may use the KWOK fraction nodes) until
 * stopped or `max` are made, and times each from its create call to being seen bound.
 */
export async function streamGpuPods(o: {
  user: CoreV1Api;
  adminConfig: KubeConfig;
  namespace: string;
  prefix: string;
  fraction: string;
  everyMs?: number;
  max: number;
}): Promise<PodWaits> {
  const createdAt = new Map<string, number>();
  const admittedAt = new Map<string, number>();
  const boundAt = new Map<string, number>();
  const created: string[] = [];
  const refusedCreates: string[] = [];
  const watching = await new Watch(o.adminConfig).watch(
    `/api/v1/namespaces/${o.namespace}/pods`,
    {},
    (_type, pod: V1Pod) => {
      const name = pod.metadata?.name ?? '';
      if (pod.spec?.nodeName && createdAt.has(name) && !boundAt.has(name)) boundAt.set(name, Date.now());
    },
    () => {},
  );
  let stopped = false;
  let i = 0;
  const loop = (async () => {
    while (!stopped && i < o.max) {
      const name = `${o.prefix}-${i}`;
      const at = Date.now();
      createdAt.set(name, at);
      try {
        await o.user.createNamespacedPod({
          namespace: o.namespace,
          body: {
            metadata: {
              name,
              namespace: o.namespace,
              labels: { team: 'vision', 'cost-center': '1234', 'tessera.test/stream': o.prefix },
              annotations: { 'tessera.io/gpu-fraction': o.fraction },
            },
            spec: {
              containers: [
                { name: 'main', image: 'registry.example/train:1', resources: { requests: { cpu: '100m' } } },
              ],
            },
          },
        });
        admittedAt.set(name, Date.now());
        created.push(name);
        i++;
      } catch (e) {
        createdAt.delete(name);
        const body = (e as { body?: string }).body;
        let why = body ?? (e as Error).message;
        try {
          why = (JSON.parse(body ?? '') as { message?: string }).message ?? why;
        } catch {
          // not a Status: the text as it came
        }
        refusedCreates.push(`${name}: ${why}`.slice(0, 400));
      }
      await new Promise((r) => setTimeout(r, Math.max(0, (o.everyMs ?? 1000) - (Date.now() - at))));
    }
  })();
  return {
    created,
    refusedCreates,
    longest() {
      let best = { ms: 0, pod: '' };
      for (const name of created) {
        const ms = Math.max(0, (boundAt.get(name) ?? Date.now()) - admittedAt.get(name)!);
        if (ms > best.ms) best = { ms, pod: name };
      }
      return best;
    },
    longestAdmission() {
      let best = { ms: 0, pod: '' };
      for (const name of created) {
        const ms = admittedAt.get(name)! - createdAt.get(name)!;
        if (ms > best.ms) best = { ms, pod: name };
      }
      return best;
    },
    allBound: () => created.every((n) => boundAt.has(n)),
    async stop() {
      stopped = true;
      await loop;
      watching.abort();
    },
  };
}

/** "1.2 s, 3 of 450 calls failed" for a probe over a window. */
export function describeGap(probe: HandoffProbe, from: number, to: number): { ms: number; text: string } {
  const gap = probe.longestBetween(from, to);
  return {
    ms: gap.ms,
    text: `${(gap.ms / 1000).toFixed(1)} s${gap.outage ? ` (first failure: ${gap.outage.why.slice(0, 120)})` : ''}, ${probe.failures} of ${probe.calls} filter calls failed`,
  };
}

/**
 * When, after `from`, another extender pod than `old` was first seen labelled leader, and when the Service's
 * EndpointSlices first had a ready endpoint at that pod's IP (kube-proxy then needs its next rule sync).
 */
export function watchTakeover(
  stack: NodeStack,
  discovery: DiscoveryV1Api,
  old: string,
): { readonly labelledAt: number | null; readonly endpointAt: number | null; stop(): void } {
  const seen = { labelledAt: null as number | null, endpointAt: null as number | null };
  let stopped = false;
  void (async () => {
    while (!stopped && seen.endpointAt === null) {
      const pods = await stack.tesseraPods().catch(() => []);
      const now = Date.now();
      const next = pods.find(
        (p) =>
          p.metadata?.name !== old &&
          p.metadata?.labels?.['app.kubernetes.io/name'] === 'tessera-extender' &&
          p.metadata?.labels?.['tessera.io/extender-role'] === 'leader',
      );
      if (next && seen.labelledAt === null) seen.labelledAt = now;
      if (next?.status?.podIP) {
        const slices = await discovery
          .listNamespacedEndpointSlice({
            namespace: 'tessera-system',
            labelSelector: 'kubernetes.io/service-name=tessera-extender',
          })
          .catch(() => ({ items: [] }));
        if (
          slices.items.some((s) =>
            (s.endpoints ?? []).some((e) => e.conditions?.ready && e.addresses.includes(next.status!.podIP!)),
          )
        )
          seen.endpointAt = Date.now();
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    get labelledAt() {
      return seen.labelledAt;
    },
    get endpointAt() {
      return seen.endpointAt;
    },
    stop() {
      stopped = true;
    },
  };
}
