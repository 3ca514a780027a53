// A list-watch cache of one resource, from @kubernetes/client-node's informer, that restarts itself after watch errors
// and knows whether it has synced (the readiness of both servers depends on it).

import {
  makeInformer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';

export type CacheEvent = 'add' | 'update' | 'delete';

export class WatchedResource<T extends KubernetesObject> {
  private readonly informer;
  private syncedOnce = false;
  private stopped = false;
  private restarts = 0;
  private readonly log: Logger;
  readonly name: string;

  constructor(kc: KubeConfig, path: string, list: () => Promise<KubernetesListObject<T>>, log: Logger, name: string) {
    this.informer = makeInformer<T>(kc, path, list);
    this.log = log;
    this.name = name;
    this.informer.on('error', (err: unknown) => {
      if (this.stopped) return;
      this.restarts++;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(this.restarts, 6));
      this.log.warn(
        { resource: name, err: err instanceof Error ? err.message : String(err), retryMs: delay },
        'watch failed; restarting',
      );
      setTimeout(() => {
        if (!this.stopped)
          this.informer
            .start()
            .catch((e: unknown) => this.log.warn({ resource: name, err: String(e) }, 'restart failed'));
      }, delay).unref();
    });
    this.informer.on('connect', () => {
      this.restarts = 0;
    });
  }

  async start(): Promise<void> {
    await this.informer.start();
    this.syncedOnce = true;
    this.log.info({ resource: this.name, objects: this.informer.list().length }, 'cache synced');
  }

  get synced(): boolean {
    return this.syncedOnce;
  }

  list(): readonly T[] {
    return this.informer.list();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  on(event: CacheEvent, cb: (obj: T) => void): void {
    this.informer.on(event, cb);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.informer.stop();
  }
}
