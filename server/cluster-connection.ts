// Whether a server's view of the cluster can be trusted right now: the API server answers, and every cache has been
// listed from it since it last answered. Both servers' readiness and their fail-closed answers read it.
//
// "Lost" is noticed two ways. A watch or list that fails drops its cache at once (a dead or restarting API server
// closes the connections). A periodic cheap probe, GET /readyz with a timeout, catches what a watch cannot see: an
// API server that stops answering without closing anything (a partition, a hung process) or that reports itself not
// ready (its etcd is gone). After `failureThreshold` failed probes in a row the connection is lost: every cache is
// distrusted. It comes back when a probe succeeds and every cache has been re-listed, in the order given (namespaces
// before nodes before pods, so that each pod finds its tenant and node).

import { Health, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeApiError, type WatchedResource } from './watched-resource.ts';

export interface ApiProbeOptions {
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  /** Consecutive failed probes that make a reachable API server count as lost. */
  readonly failureThreshold?: number;
}

export const DEFAULT_API_PROBE: Required<ApiProbeOptions> = {
  intervalMs: 5_000,
  timeoutMs: 4_000,
  failureThreshold: 2,
};

/** Thrown by a cluster view that cannot be trusted; the webhook denies with its message. */
export class ClusterUnavailableError extends Error {
  override name = 'ClusterUnavailableError';
}

export class ClusterConnection {
  private readonly health: Health;
  private readonly server: string;
  private readonly resources: readonly WatchedResource<KubernetesObject>[];
  private readonly log: Logger;
  private readonly probe: Required<ApiProbeOptions>;
  private reachable = false;
  /** Why the last probe failed; null before the first probe. */
  private probeProblem: string | null = null;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private started = false;

  constructor(
    kc: KubeConfig,
    resources: readonly WatchedResource<KubernetesObject>[],
    log: Logger,
    probe: ApiProbeOptions = {},
  ) {
    this.health = new Health(kc);
    this.server = kc.getCurrentCluster()?.server ?? '(no cluster in the kubeconfig)';
    this.resources = resources;
    this.log = log;
    this.probe = { ...DEFAULT_API_PROBE, ...probe };
  }

  /** Probes the API server and lists the caches in order (each after the one before has synced), in the background. */
  start(): void {
    if (this.started) return;
    this.started = true;
    void this.probeLoop();
    void this.syncInOrder();
  }

  /** Why the cluster view cannot be trusted now (phrased to follow "Tessera "), or null when it can. */
  problem(): string | null {
    if (!this.reachable)
      return this.probeProblem === null
        ? `has not reached the Kubernetes API at ${this.server} yet`
        : `cannot reach the Kubernetes API at ${this.server}: ${this.probeProblem}`;
    for (const r of this.resources)
      if (!r.synced) return `has not synced its ${r.name} cache from the Kubernetes API (${r.problem ?? 'pending'})`;
    return null;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all(this.resources.map((r) => r.stop()));
  }

  private async syncInOrder(): Promise<void> {
    for (const r of this.resources) {
      if (this.stopped) return;
      await r.start();
      await r.whenSynced();
    }
  }

  private async probeOnce(): Promise<string | null> {
    try {
      const ok = await this.health.readyz({ signal: AbortSignal.timeout(this.probe.timeoutMs) });
      return ok ? null : 'GET /readyz: the API server says it is not ready';
    } catch (e) {
      const timedOut = (e as { cause?: { name?: string }; name?: string }).cause?.name === 'TimeoutError';
      return `GET /readyz: ${timedOut ? `no answer within ${this.probe.timeoutMs / 1000} s` : describeApiError(e)}`;
    }
  }

  private async probeLoop(): Promise<void> {
    if (this.stopped) return;
    const problem = await this.probeOnce();
    if (this.stopped) return;
    if (problem === null) {
      this.failures = 0;
      const wasLost = !this.reachable && this.probeProblem !== null;
      this.reachable = true;
      this.probeProblem = null;
      if (wasLost) {
        this.log.info({ server: this.server }, 'Kubernetes API reachable again; re-listing every cache');
        void this.resyncInOrder();
      }
    } else {
      this.failures++;
      this.probeProblem = problem;
      // Before it ever answered one failure is enough; after, a single slow answer is not a loss.
      if (this.reachable && this.failures >= this.probe.failureThreshold) {
        this.reachable = false;
        this.log.error({ server: this.server, problem }, 'Kubernetes API lost; not ready until it answers again');
        for (const r of this.resources) r.invalidate(`the Kubernetes API was lost (${problem})`);
      } else if (!this.reachable && this.failures === 1) {
        this.log.warn({ server: this.server, problem }, 'Kubernetes API not reachable');
      }
    }
    this.timer = setTimeout(() => void this.probeLoop(), this.probe.intervalMs);
    this.timer.unref();
  }

  private async resyncInOrder(): Promise<void> {
    for (const r of this.resources) {
      if (this.stopped || !this.reachable) return;
      await r.resync();
    }
  }
}
