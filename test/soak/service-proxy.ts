// A loopback stand-in for a Kubernetes Service: one TCP address in front of several replicas, forwarding each new
// connection to a replica whose readiness probe passes (round robin), as kube-proxy does with a Service's ready
// endpoints. The soak puts the webhook's and the extender's replicas behind these, so that killing one replica is a
// fault the rest of the system must ride out rather than a dead URL.

import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Backend {
  readonly name: string;
  readonly port: number;
  /** The readiness URL (http or https) probed on loopback. */
  readonly readyUrl: string;
}

export interface ServiceProxy {
  readonly port: number;
  /** Replicas currently in rotation. */
  ready(): readonly string[];
  close(): Promise<void>;
}

/** A readiness probe as the kubelet runs it: HTTP(S) GET, 2xx/3xx passes, certificates not verified. */
export function probe(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const get = url.startsWith('https:') ? httpsGet : httpGet;
    const req = get(url, { rejectUnauthorized: false, timeout: 1_000 }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 500) < 400);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
  });
}

/**
 * `selected`, when given, is the Service's selector: the backends whose pods carry its labels now (as the
 * EndpointSlice controller sees them); the extender's Service selects the leader's label. Without it, every backend.
 */
export async function startServiceProxy(
  backends: () => readonly Backend[],
  probeMs = 500,
  selected?: (list: readonly Backend[]) => Promise<readonly Backend[]>,
): Promise<ServiceProxy> {
  let inRotation: Backend[] = [];
  let next = 0;
  let stopped = false;
  const refresh = async () => {
    const all = backends();
    const list = selected ? await selected(all).catch(() => []) : all;
    const results = await Promise.all(list.map((b) => probe(b.readyUrl)));
    inRotation = list.filter((_, i) => results[i]);
  };
  await refresh();
  const timer = setInterval(() => void refresh(), probeMs);
  timer.unref();
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    const target = inRotation.length === 0 ? undefined : inRotation[next++ % inRotation.length];
    if (target === undefined || stopped) {
      client.destroy();
      return;
    }
    const upstream = connect(target.port, '127.0.0.1');
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.once('error', drop);
    upstream.once('error', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    port,
    ready: () => inRotation.map((b) => b.name),
    async close() {
      stopped = true;
      clearInterval(timer);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
