// Policy files from a directory (a ConfigMap mount), compiled with the core's compiler, hot-reloaded on change. A new
// set of files that does not compile never replaces the last good policy: the store keeps serving it and says so in
// its status (logs, metrics and the readiness reason read it). With a cache directory (an emptyDir in the shipped
// manifests) the last good files also outlive a restart of the container: a replica that crashes while the ConfigMap is
// broken comes back serving what it served before, instead of failing closed with no policy at all.

import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  watch,
  writeFileSync,
  type FSWatcher,
} from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { compilePolicy, formatProblem, type PolicyFile } from '../core/policy/compile.ts';
import type { Policy } from '../core/policy/model.ts';

export type PolicyState = 'valid' | 'stale' | 'missing';

export interface PolicyStatus {
  /** valid: the files on disk are in force; stale: they are invalid and the last good policy is served; missing: none ever loaded. */
  readonly state: PolicyState;
  readonly revision: string | null;
  readonly problems: readonly string[];
  readonly files: readonly string[];
  readonly loadedAt: string | null;
}

const POLICY_FILE = /\.(ya?ml|json)$/i;
const LAST_GOOD = 'last-good-policy.json';

/** Reads the policy files of a directory; ConfigMap internals (`..data`, `..2026_...`) are skipped. */
export function readPolicyDir(dir: string): PolicyFile[] {
  return readdirSync(dir)
    .filter((f) => !f.startsWith('.') && POLICY_FILE.test(f))
    .filter((f) => statSync(join(dir, f), { throwIfNoEntry: false })?.isFile() ?? false)
    .sort()
    .map((f) => ({ name: f, text: readFileSync(join(dir, f), 'utf8') }));
}

export class PolicyStore extends EventEmitter {
  private policy: Policy | null = null;
  private recent: ReadonlySet<string> = new Set();
  private state: PolicyStatus = {
    state: 'missing',
    revision: null,
    problems: ['not loaded yet'],
    files: [],
    loadedAt: null,
  };
  private fingerprint = '';
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;

  private readonly dir: string;
  private readonly log: Logger;
  private readonly cacheDir: string | null;

  /** `cacheDir`: where the last good files are kept across restarts (none: only in memory). */
  constructor(dir: string, log: Logger, cacheDir: string | null = null) {
    super();
    this.dir = dir;
    this.log = log;
    this.cacheDir = cacheDir;
  }

  current(): Policy | null {
    return this.policy;
  }

  status(): PolicyStatus {
    return this.state;
  }

  /** The revisions in force just before the current one (at most two). */
  recentRevisions(): ReadonlySet<string> {
    return this.recent;
  }

  /** Reads and compiles the directory now. Returns whether the files on disk are in force. */
  reload(): boolean {
    let files: PolicyFile[];
    try {
      files = readPolicyDir(this.dir);
    } catch (e) {
      return this.reject(
        [`cannot read policy directory ${this.dir}: ${e instanceof Error ? e.message : String(e)}`],
        [],
      );
    }
    const fingerprint = createHash('sha256').update(JSON.stringify(files)).digest('hex');
    if (fingerprint === this.fingerprint && this.state.state !== 'missing') return this.state.state === 'valid';
    this.fingerprint = fingerprint;
    const result = compilePolicy(files);
    if (!result.ok)
      return this.reject(
        result.problems.map(formatProblem),
        files.map((f) => f.name),
      );
    const previous = this.policy?.revision ?? null;
    if (previous !== null && previous !== result.policy.revision)
      this.recent = new Set([previous, ...this.recent].slice(0, 2));
    this.policy = result.policy;
    this.state = {
      state: 'valid',
      revision: result.policy.revision,
      problems: [],
      files: files.map((f) => f.name),
      loadedAt: new Date().toISOString(),
    };
    if (previous !== result.policy.revision) {
      this.saveLastGood(files);
      this.log.info({ revision: result.policy.revision, previous, files: this.state.files }, 'policy loaded');
      this.emit('change', result.policy);
    }
    return true;
  }

  private reject(problems: string[], files: string[]): boolean {
    if (this.policy === null) this.restoreLastGood();
    const serving = this.policy?.revision ?? null;
    this.state = {
      state: serving === null ? 'missing' : 'stale',
      revision: serving,
      problems,
      files,
      loadedAt: this.state.loadedAt,
    };
    this.log.error(
      { problems, servingRevision: serving },
      serving === null
        ? 'policy files are invalid and no policy is in force'
        : 'policy files are invalid; still serving the last good policy',
    );
    this.emit('rejected', problems);
    return false;
  }

  private saveLastGood(files: readonly PolicyFile[]): void {
    if (this.cacheDir === null) return;
    try {
      mkdirSync(this.cacheDir, { recursive: true });
      const tmp = join(this.cacheDir, `.${LAST_GOOD}.${process.pid}`);
      writeFileSync(tmp, JSON.stringify({ files }));
      renameSync(tmp, join(this.cacheDir, LAST_GOOD)); // atomic: a crash mid-write leaves the previous copy
    } catch (e) {
      this.log.warn({ err: e, cacheDir: this.cacheDir }, 'cannot keep the last good policy in the cache directory');
    }
  }

  /** At start with broken files: the cached last good files, compiled again (a cache that does not compile is ignored). */
  private restoreLastGood(): void {
    if (this.cacheDir === null) return;
    const path = join(this.cacheDir, LAST_GOOD);
    let files: PolicyFile[];
    try {
      const cached = JSON.parse(readFileSync(path, 'utf8')) as { files?: unknown };
      if (!Array.isArray(cached.files)) throw new Error('no files in it');
      files = cached.files.filter((f): f is PolicyFile => typeof f?.name === 'string' && typeof f?.text === 'string');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log.warn({ err: e, path }, 'the cached last good policy is unreadable; ignoring it');
      return;
    }
    const result = compilePolicy(files);
    if (!result.ok) {
      this.log.warn(
        { path, problems: result.problems.map(formatProblem) },
        'the cached last good policy does not compile',
      );
      return;
    }
    this.policy = result.policy;
    this.state = { ...this.state, loadedAt: new Date().toISOString() };
    this.log.warn({ revision: result.policy.revision, path }, 'restored the last good policy from the cache directory');
    this.emit('change', result.policy);
  }

  /** Reloads on directory events (ConfigMap symlink swaps included) and, as a fallback, every `pollMs`. */
  watch(pollMs = 5000): void {
    const schedule = () => {
      if (this.debounce) clearTimeout(this.debounce);
      this.debounce = setTimeout(() => this.reload(), 100);
    };
    try {
      this.watcher = watch(this.dir, schedule);
      this.watcher.on('error', (e) => this.log.warn({ err: e }, 'policy directory watch failed; polling only'));
    } catch (e) {
      this.log.warn({ err: e }, 'cannot watch the policy directory; polling only');
    }
    this.timer = setInterval(() => this.reload(), pollMs);
    this.timer.unref();
  }

  close(): void {
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
  }
}
