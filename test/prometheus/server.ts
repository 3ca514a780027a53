// A real Prometheus server (built from the Go module by build.ts) as the soak runs it: a configuration written from
// scrape jobs, the TSDB in a folder of the caller's, loopback only. Started, it is ready and has scraped every target
// once, or it throws with the end of its log: a soak that cannot run Prometheus fails, it does not skip.

import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, startProcess, stopProcess } from '../controlplane/cluster.ts';
import { ensurePrometheus } from './build.ts';

export interface ScrapeTarget {
  /** host:port */
  readonly address: string;
  readonly labels?: Readonly<Record<string, string>>;
}

export interface ScrapeJob {
  readonly name: string;
  readonly scheme: 'http' | 'https';
  readonly targets: readonly ScrapeTarget[];
  /** For https: the CA bundle file to verify the servers with. Prometheus reads it again whenever it changes. */
  readonly caFile?: string;
}

export interface PrometheusConfig {
  readonly scrapeIntervalSeconds: number;
  readonly ruleFiles: readonly string[];
  readonly jobs: readonly ScrapeJob[];
}

/** prometheus.yml for these jobs; the scrape timeout is the interval (a slower scrape fails rather than overlaps). */
export function prometheusConfigYaml(c: PrometheusConfig): string {
  const interval = `${c.scrapeIntervalSeconds}s`;
  return stringify({
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    rule_files: [...c.ruleFiles],
    scrape_configs: c.jobs.map((j) => ({
      job_name: j.name,
      scheme: j.scheme,
      metrics_path: '/metrics',
      // The servers' metrics carry namespace and pod labels of their own (the pods they account for).
      honor_labels: true,
      ...(j.caFile ? { tls_config: { ca_file: j.caFile } } : {}),
      static_configs: j.targets.map((t) => ({
        targets: [t.address],
        ...(t.labels ? { labels: { ...t.labels } } : {}),
      })),
    })),
  });
}

export interface PromVectorSample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

export interface PromMatrixSeries {
  readonly metric: Record<string, string>;
  readonly values: [number, string][];
}

export interface PromTarget {
  readonly labels: Record<string, string>;
  readonly scrapeUrl: string;
  readonly health: 'up' | 'down' | 'unknown';
  readonly lastError: string;
  readonly lastScrape: string;
}

export interface RunningPrometheus {
  readonly url: string;
  readonly dataDir: string;
  readonly configFile: string;
  readonly version: string;
  /** An instant query at `time` (now by default); instant vectors and range vectors (matrix) both come back raw. */
  query(expr: string, time?: Date): Promise<{ resultType: string; result: unknown[] }>;
  queryRange(expr: string, start: Date, end: Date, stepSeconds: number): Promise<PromMatrixSeries[]>;
  targets(): Promise<PromTarget[]>;
  /** The recording rule groups with their health. */
  rules(): Promise<{ name: string; rules: { name: string; health: string; lastError?: string }[] }[]>;
  stop(): Promise<void>;
}

export interface StartPrometheusOptions {
  /** Holds prometheus.yml and data/ (the TSDB). */
  readonly dir: string;
  /** Where prometheus.log goes. */
  readonly logDir: string;
  readonly config: PrometheusConfig;
  /** How long to wait for readiness and the first scrape of every target. */
  readonly timeoutMs?: number;
  readonly log?: (line: string) => void;
}

async function api<T>(base: string, path: string, params: Record<string, string> = {}): Promise<T> {
  const url = new URL(path, base);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  const body = (await res.json().catch(() => null)) as { status?: string; error?: string; data?: T } | null;
  if (body?.status !== 'success') throw new Error(`Prometheus ${path}: ${body?.error ?? `HTTP ${res.status}`}`);
  return body.data as T;
}

function tail(file: string, lines = 20): string {
  return existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '(no log)';
}

export async function startPrometheus(o: StartPrometheusOptions): Promise<RunningPrometheus> {
  const bin = ensurePrometheus(o.log);
  if (!existsSync(bin.prometheus)) throw new Error(`Prometheus was not built: ${bin.prometheus} is missing`);
  mkdirSync(o.dir, { recursive: true });
  const configFile = join(o.dir, 'prometheus.yml');
  const dataDir = join(o.dir, 'data');
  writeFileSync(configFile, prometheusConfigYaml(o.config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const logFile = join(o.logDir, 'prometheus.log');
  const child: ChildProcess = startProcess(
    'prometheus',
    bin.prometheus,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${dataDir}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    o.logDir,
  );
  const running: RunningPrometheus = {
    url,
    dataDir,
    configFile,
    version: bin.version,
    query: (expr, time) =>
      api(url, 'api/v1/query', { query: expr, ...(time ? { time: String(time.getTime() / 1000) } : {}) }),
    queryRange: async (expr, start, end, step) =>
      (
        await api<{ result: PromMatrixSeries[] }>(url, 'api/v1/query_range', {
          query: expr,
          start: String(start.getTime() / 1000),
          end: String(end.getTime() / 1000),
          step: `${step}s`,
        })
      ).result,
    targets: async () =>
      (await api<{ activeTargets: PromTarget[] }>(url, 'api/v1/targets', { state: 'active' })).activeTargets,
    rules: async () =>
      (await api<{ groups: Awaited<ReturnType<RunningPrometheus['rules']>> }>(url, 'api/v1/rules')).groups,
    stop: () => stopProcess(child),
  };
  const expected = o.config.jobs.reduce((n, j) => n + j.targets.length, 0);
  const deadline = Date.now() + (o.timeoutMs ?? 60_000);
  let last = 'not ready';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`Prometheus exited (${child.exitCode ?? child.signalCode}); ${logFile}:\n${tail(logFile)}`);
    try {
      const ready = await fetch(new URL('-/ready', url), { signal: AbortSignal.timeout(2_000) });
      if (ready.ok) {
        const targets = await running.targets();
        const up = targets.filter((t) => t.health === 'up').length;
        last = `${up} of ${expected} targets up (${targets
          .filter((t) => t.health !== 'up')
          .map((t) => `${t.scrapeUrl}: ${t.health} ${t.lastError}`)
          .join('; ')})`;
        if (targets.length === expected && up === expected) return running;
      }
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  await running.stop();
  throw new Error(
    `Prometheus did not scrape every target within ${(o.timeoutMs ?? 60_000) / 1000} s: ${last}; ${logFile}:\n${tail(logFile)}`,
  );
}
