// A list-watch cache of one resource that knows whether it can be trusted (the readiness of both servers depends on
// it). It is synced only after a list has succeeded and only while nothing has gone wrong since: a failed list, a
// failed watch or an invalidation (the API server was lost) drops it until a fresh list succeeds. Every recovery
// re-lists, so the cache equals the server's state again (objects deleted meanwhile fire `delete`), instead of
// resuming a watch that may have missed events. It is built on the client library's Watch, not its informer: the
// informer reports a failed initial list as an event and then returns as if it had synced.

import { type KubeConfig, type KubernetesListObject, type KubernetesObject, Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';

export type CacheEvent = 'add' | 'update' | 'delete';

export interface WatchedResourceOptions {
  /** First retry after a failure; doubles up to `retryMaxMs`. */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** A list that has not answered after this long counts as failed. */
  readonly listTimeoutMs?: number;
  /** Narrows the watch as the list is narrowed, e.g. `spec.nodeName=n1` (the node agent watches its node's pods). */
  readonly fieldSelector?: string;
}

/** What an error from the API client says, in one line: `HTTP 403: pods is forbidden ...`, `connect ECONNREFUSED ...`. */
export function describeApiError(e: unknown): string {
  if (e === null || typeof e !== 'object') return String(e);
  const x = e as {
    code?: unknown;
    body?: unknown;
    message?: unknown;
    cause?: unknown;
    name?: unknown;
    errors?: unknown;
  };
  if (typeof x.code === 'number' && x.body !== undefined) {
    let detail = '';
    try {
      const body = (typeof x.body === 'string' ? JSON.parse(x.body) : x.body) as { message?: unknown };
      detail = typeof body?.message === 'string' ? body.message : '';
    } catch {
      detail = String(x.body).slice(0, 200);
    }
    return `HTTP ${x.code}${detail ? `: ${detail}` : ''}`;
  }
  if (x.name === 'TimeoutError') return 'no answer before the timeout';
  if (x.cause !== undefined && x.cause !== null) return describeApiError(x.cause);
  if (Array.isArray(x.errors) && x.errors.length > 0) return describeApiError(x.errors[0]);
  const message = typeof x.message === 'string' && x.message !== '' ? x.message : String(x.name ?? e);
  return message.split('\n')[0]!;
}

type Handler<T> = (obj: T) => void;

const key = (o: KubernetesObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export class WatchedResource<T extends KubernetesObject> {
  readonly name: string;
  private readonly path: string;
  private readonly listFn: () => Promise<KubernetesListObject<T>>;
  private readonly watcher: Watch;
  private readonly log: Logger;
  private readonly options: Required<WatchedResourceOptions>;
  private readonly objects = new Map<string, T>();
  private readonly handlers: Record<CacheEvent, Handler<T>[]> = { add: [], update: [], delete: [] };
  private resourceVersion = '';
  private needList = true;
  private isSynced = false;
  private why: string | null = 'not listed yet';
  private running = false;
  private stopped = false;
  private failures = 0;
  /** Bumped by every interruption; an attempt that finds it changed drops its result. */
  private epoch = 0;
  private interrupt: (() => void) | null = null;
  private waiters: (() => void)[] = [];
  private afterAttempt: (() => void)[] = [];
  private loop: Promise<void> | null = null;

  constructor(
    kc: KubeConfig,
    path: string,
    list: () => Promise<KubernetesListObject<T>>,
    log: Logger,
    name: string,
    options: WatchedResourceOptions = {},
  ) {
    this.path = path;
    this.listFn = list;
    this.watcher = new Watch(kc);
    this.log = log;
    this.name = name;
    this.options = { retryBaseMs: 250, retryMaxMs: 30_000, listTimeoutMs: 60_000, fieldSelector: '', ...options };
  }

  /** Starts listing and watching; resolves after the first list attempt, whatever its outcome (see `synced`). */
  async start(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    const first = new Promise<void>((resolve) => this.afterAttempt.push(resolve));
    this.loop = this.run();
    await first;
  }

  /** Listed from the API server, and no failure or invalidation since. */
  get synced(): boolean {
    return this.isSynced;
  }

  /** Why the cache is not synced, or null when it is. */
  get problem(): string | null {
    return this.isSynced ? null : this.why;
  }

  /** Resolves once the cache is synced (at once if it is), or when it is stopped. */
  whenSynced(): Promise<void> {
    if (this.isSynced || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Distrusts the cache (the API server was lost): not synced until a fresh list succeeds. */
  invalidate(reason: string): void {
    this.needList = true;
    this.markBroken(reason);
    this.kick();
  }

  /** Re-lists now rather than at the next retry (the API server is back); resolves once synced. */
  resync(): Promise<void> {
    this.needList = true;
    this.failures = 0;
    this.kick();
    return this.whenSynced();
  }

  list(): readonly T[] {
    return [...this.objects.values()];
  }

  get(name: string, namespace?: string): T | undefined {
    return this.objects.get(`${namespace ?? ''}/${name}`);
  }

  on(event: CacheEvent, cb: Handler<T>): void {
    this.handlers[event].push(cb);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.kick();
    for (const w of this.waiters.splice(0)) w();
    await this.loop;
  }

  private kick(): void {
    this.epoch++;
    const interrupt = this.interrupt;
    this.interrupt = null;
    interrupt?.();
  }

  /** Resolves when `work` settles or the attempt is interrupted, whichever comes first. */
  private interruptible<R>(work: Promise<R>): Promise<{ ok: true; value: R } | { ok: false; error: unknown } | null> {
    return new Promise((resolve) => {
      this.interrupt = () => resolve(null);
      work.then(
        (value) => resolve({ ok: true, value }),
        (error: unknown) => resolve({ ok: false, error }),
      );
    });
  }

  private sleep(ms: number): Promise<unknown> {
    return this.interruptible(new Promise((r) => setTimeout(r, ms).unref()));
  }

  private markSynced(): void {
    this.failures = 0;
    const was = this.isSynced;
    this.isSynced = true;
    this.why = null;
    if (!was) this.log.info({ resource: this.name, objects: this.objects.size }, 'cache synced');
    for (const w of this.waiters.splice(0)) w();
  }

  private markBroken(reason: string): void {
    if (this.isSynced) this.log.warn({ resource: this.name, reason }, 'cache no longer trusted');
    this.isSynced = false;
    this.why = reason;
  }

  private emit(event: CacheEvent, obj: T): void {
    for (const h of this.handlers[event]) h(obj);
  }

  private upsert(obj: T): void {
    // Nothing here reads who wrote which field, and on a pod that record is often most of the object: kube-scheduler's
    // pod informer drops it for the same reason (k8s.io/kubernetes v1.37.2 pkg/scheduler/scheduler.go newPodInformer).
    if (obj.metadata?.managedFields !== undefined) delete obj.metadata.managedFields;
    const k = key(obj);
    const old = this.objects.get(k);
    this.objects.set(k, obj);
    if (old === undefined) this.emit('add', obj);
    else if (
      old.metadata?.resourceVersion === undefined ||
      old.metadata.resourceVersion !== obj.metadata?.resourceVersion
    )
      this.emit('update', obj);
  }

  private remove(obj: T): void {
    const k = key(obj);
    const old = this.objects.get(k);
    if (old === undefined) return;
    this.objects.delete(k);
    this.emit('delete', old);
  }

  /** Replaces the cache with a list: objects gone from the server fire `delete`, new and changed ones `add`/`update`. */
  private replace(items: readonly T[]): void {
    const fresh = new Set(items.map(key));
    for (const [k, old] of [...this.objects])
      if (!fresh.has(k)) {
        this.objects.delete(k);
        this.emit('delete', old);
      }
    for (const item of items) this.upsert(item);
  }

  private async backoff(): Promise<void> {
    this.failures++;
    const ms = Math.min(this.options.retryMaxMs, this.options.retryBaseMs * 2 ** Math.min(this.failures - 1, 16));
    await this.sleep(ms);
  }

  private settleFirstAttempt(): void {
    for (const r of this.afterAttempt.splice(0)) r();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (this.needList) {
        const epoch = this.epoch;
        const timeout = new Promise<never>((_, reject) => {
          setTimeout(
            () => reject(new Error(`no answer within ${this.options.listTimeoutMs / 1000} s`)),
            this.options.listTimeoutMs,
          ).unref();
        });
        const outcome = await this.interruptible(Promise.race([this.listFn(), timeout]));
        if (this.stopped) break;
        if (outcome === null || epoch !== this.epoch) continue;
        if (!outcome.ok) {
          const reason = `list failed: ${describeApiError(outcome.error)}`;
          this.log.warn({ resource: this.name, err: reason }, 'cache list failed; retrying');
          this.markBroken(reason);
          this.settleFirstAttempt();
          await this.backoff();
          continue;
        }
        this.replace(outcome.value.items ?? []);
        this.resourceVersion = outcome.value.metadata?.resourceVersion ?? '';
        this.needList = false;
        this.markSynced();
        this.settleFirstAttempt();
      }
      const started = Date.now();
      const ended = await this.watchOnce();
      if (this.stopped) break;
      if (ended === 'interrupted' || ended === 'gone') continue;
      if (ended !== null) {
        const reason = `watch failed: ${describeApiError(ended)}`;
        this.log.warn({ resource: this.name, err: reason }, 'watch failed; re-listing');
        this.needList = true;
        this.markBroken(reason);
        await this.backoff();
        continue;
      }
      // The server closed the watch (its timeout) or it went quiet for long: watch again from where it was. A watch
      // that keeps ending at once is not allowed to spin.
      if (Date.now() - started < 1000) await this.sleep(1000);
    }
    this.settleFirstAttempt();
  }

  /**
   * One watch from the current resourceVersion, until it ends. Answers null for a normal end (server-side timeout,
   * client-side inactivity timeout), 'gone' when the resourceVersion is too old (re-list), 'interrupted', or the error.
   */
  private async watchOnce(): Promise<unknown> {
    const epoch = this.epoch;
    let gone = false;
    let controller: AbortController | null = null;
    const ended = new Promise<unknown>((resolve) => {
      const done = (err: unknown) => resolve(err ?? null);
      const onEvent = (phase: string, obj: T & { code?: number }) => {
        if (epoch !== this.epoch) return;
        if (phase === 'ERROR') {
          if (obj.code === 410) gone = true;
          return;
        }
        if (phase === 'ADDED' || phase === 'MODIFIED') this.upsert(obj);
        else if (phase === 'DELETED') this.remove(obj);
        if (obj.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
      };
      this.watcher
        .watch(
          this.path,
          {
            resourceVersion: this.resourceVersion,
            allowWatchBookmarks: true,
            ...(this.options.fieldSelector ? { fieldSelector: this.options.fieldSelector } : {}),
          },
          onEvent,
          done,
        )
        .then(
          (c) => {
            controller = c;
            // Interrupted while connecting: this watch belongs to nobody.
            if (epoch !== this.epoch) c.abort();
          },
          (e: unknown) => resolve(e),
        );
    });
    const outcome = await this.interruptible(ended);
    if (outcome === null || epoch !== this.epoch) {
      (controller as AbortController | null)?.abort();
      return 'interrupted';
    }
    const err = outcome.ok ? outcome.value : outcome.error;
    const status = (err as { statusCode?: number; code?: number } | null)?.statusCode;
    if (gone || status === 410) {
      this.needList = true;
      return 'gone';
    }
    if (err !== null && (err as { name?: string }).name === 'TimeoutError') return null;
    return err;
  }
}
