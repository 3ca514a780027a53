// Chargeback against a real Prometheus. The soak runs Prometheus (built from its Go module) scraping every extender and
// webhook replica, with Tessera's recording rules loaded and its TSDB in the soak's directory; the scrapes must survive
// the faults (a replica's scrapes may fail only while it is down, and never on the webhook's rotating certificate).
// At the end `tessera usage` runs twice over the soak's window, through the CLI, from Prometheus and from the soak's
// snapshots, and the two must agree per (tenant, namespace, pool) row and in total.
//
// Why they may differ at all: both integrate what each pod holds, a step function, from samples taken at instants: the
// snapshots every second, Prometheus at every scrape of the leader, every second too. Each sampler sees a pod's start
// and end up to one of its intervals late, independently of the other, so every pod adds a random error of well under
// a second times its GPU-equivalents; the leader also counts a pod from its bind, a moment before the API shows it,
// and until its informer sees the end, a moment after. TOLERANCE is sized for that (docs/soak.md, "A living cluster: the
// soak"). The window is cut at two snapshots, the first taken before any pod exists, the last with the cluster quiet,
// so its ends add nothing; while no snapshot can be taken the snapshots are blind (SnapshotGaps). A pod is never
// counted after it ends: its series goes stale at the next scrape (see core/chargeback/prometheus-query.ts).

import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  type PodHolding,
  podHoldings,
  type UsageReport,
  type UsageRow,
  usageKey,
} from '../../core/chargeback/gpu-hours.ts';
import type { ClusterSnapshot } from '../../core/invariants/cluster-snapshot.ts';
import type { Policy } from '../../core/policy/model.ts';
import { heldPerPod, POD_GPU_EQUIVALENTS } from '../../core/chargeback/prometheus-query.ts';
import { type PromMatrixSeries, type RunningPrometheus, startPrometheus } from '../prometheus/server.ts';
import type { Replica } from './replicas.ts';
import type { Topology } from './topology.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TESSERA = join(REPO, 'cli', 'tessera.ts');
export const RULES_FILE = join(REPO, 'manifests', 'monitoring', 'tessera.rules.yml');

/** Prometheus scrapes every replica this often (also its scrape timeout). */
export const SCRAPE_INTERVAL_S = 1;
/** `tessera usage --step`: finer than the scrape interval, so that every scrape's value counts for its own span. */
export const USAGE_STEP_S = 1;

/** How closely the two must agree: `relative` of the larger of the two, but never less than `relative * floor` GPU-h
 * (rows under `floor` are compared absolutely; see docs/soak.md, "A living cluster: the soak"). */
export interface Tolerance {
  readonly relative: number;
  readonly floorGpuHours: number;
}

export const TOLERANCE: Tolerance = { relative: 0.02, floorGpuHours: 0.1 };

export interface RowComparison {
  readonly tenant: string;
  readonly namespace: string;
  readonly pool: string;
  readonly snapshots: number;
  readonly prometheus: number;
  /** |prometheus - snapshots| */
  readonly diff: number;
  /** diff over the larger of the two (0 when both are 0). */
  readonly relative: number;
  readonly allowed: number;
  /** Part of `allowed` for what the snapshots could not see while none could be taken (SnapshotGaps). */
  readonly gapAllowance: number;
  readonly ok: boolean;
}

export interface UsageComparison {
  readonly rows: readonly RowComparison[];
  readonly total: RowComparison;
  /** The row nearest its tolerance (largest diff / allowed), or null without rows. */
  readonly worst: RowComparison | null;
}

const rowKey = (r: Pick<UsageRow, 'tenant' | 'namespace' | 'pool'>) => `${r.tenant}/${r.namespace}/${r.pool}`;

function compareOne(
  id: Pick<UsageRow, 'tenant' | 'namespace' | 'pool'>,
  snapshots: number,
  prometheus: number,
  tol: Tolerance,
  gapAllowance: number,
): RowComparison {
  const diff = Math.abs(prometheus - snapshots);
  const larger = Math.max(Math.abs(snapshots), Math.abs(prometheus));
  const allowed = tol.relative * Math.max(larger, tol.floorGpuHours) + gapAllowance;
  return {
    ...id,
    snapshots,
    prometheus,
    diff,
    relative: larger === 0 ? 0 : diff / larger,
    allowed,
    gapAllowance,
    ok: diff <= allowed,
  };
}

/** Per (tenant, namespace, pool) row present in either report, and the totals; `gaps` adds, per usageKey, the
 * GPU-hours the snapshots could not see (SnapshotGaps.allowance). */
export function compareUsage(
  snapshots: UsageReport,
  prometheus: UsageReport,
  tol = TOLERANCE,
  gaps: ReadonlyMap<string, number> = new Map(),
): UsageComparison {
  const rows = new Map<string, { id: UsageRow; s: number; p: number }>();
  for (const r of snapshots.rows) rows.set(rowKey(r), { id: r, s: r.gpuHours, p: 0 });
  for (const r of prometheus.rows) {
    const row = rows.get(rowKey(r)) ?? { id: r, s: 0, p: 0 };
    row.p = r.gpuHours;
    rows.set(rowKey(r), row);
  }
  const compared = [...rows.values()]
    .map(({ id, s, p }) =>
      compareOne(
        { tenant: id.tenant, namespace: id.namespace, pool: id.pool },
        s,
        p,
        tol,
        gaps.get(usageKey(id.tenant, id.namespace, id.pool)) ?? 0,
      ),
    )
    .sort((a, b) => rowKey(a).localeCompare(rowKey(b)));
  const sum = (side: 'snapshots' | 'prometheus') => compared.reduce((n, r) => n + r[side], 0);
  const gapTotal = [...gaps.values()].reduce((n, g) => n + g, 0);
  const total = compareOne(
    { tenant: 'total', namespace: '', pool: '' },
    sum('snapshots'),
    sum('prometheus'),
    tol,
    gapTotal,
  );
  let worst: RowComparison | null = null;
  for (const r of compared) if (worst === null || r.diff / r.allowed > worst.diff / worst.allowed) worst = r;
  return { rows: compared, total, worst };
}

export const describeRow = (r: RowComparison): string =>
  `${r.namespace ? `${r.tenant || '-'}/${r.namespace}/${r.pool || '-'}` : r.tenant}: Prometheus ${r.prometheus.toFixed(4)} GPU-h, snapshots ${r.snapshots.toFixed(4)} GPU-h, difference ${r.diff.toFixed(4)} (${(100 * r.relative).toFixed(2)} %, allowed ${r.allowed.toFixed(4)})`;

/**
 * While the API server is down no snapshot can be taken, and the snapshots count what each pod held in the last one
 * before for the whole gap (6 to 8 s in the soak), while Prometheus, scraping the extender, sees the changes of the
 * moment before the outage when they happened. For two consecutive snapshots further apart than twice the cadence,
 * every pod whose holding differs between them may be off by the gap beyond one cadence times the difference; that
 * much is added to its row's tolerance. (The ordinary cadence's error is what the tolerance itself is for.)
 */
export class SnapshotGaps {
  /** GPU-hours per usageKey. */
  readonly allowance = new Map<string, number>();
  /** Lengths of the gaps found (ms). */
  readonly gaps: number[] = [];
  private readonly cadenceMs: number;
  private readonly policy: () => Policy;
  private prev: { time: number; holdings: Map<string, PodHolding> } | null = null;

  constructor(cadenceMs: number, policy: () => Policy) {
    this.cadenceMs = cadenceMs;
    this.policy = policy;
  }

  /** Every snapshot, in the order taken. */
  add(snapshot: ClusterSnapshot): void {
    const time = Date.parse(snapshot.time);
    const holdings = podHoldings(snapshot, this.policy());
    const prev = this.prev;
    if (prev !== null && time - prev.time > 2 * this.cadenceMs) {
      this.gaps.push(time - prev.time);
      const hours = (time - prev.time - this.cadenceMs) / 3_600_000;
      for (const uid of new Set([...prev.holdings.keys(), ...holdings.keys()])) {
        const before = prev.holdings.get(uid);
        const after = holdings.get(uid);
        const change = Math.abs((before?.equivalents ?? 0) - (after?.equivalents ?? 0));
        const key = (before ?? after)!.key;
        if (change > 0) this.allowance.set(key, (this.allowance.get(key) ?? 0) + change * hours);
      }
    }
    this.prev = { time, holdings };
  }
}

/** `tessera usage ARGS` as a user runs it (its own process); returns what it printed. */
export async function tesseraUsage(args: readonly string[]): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [TESSERA, 'usage', ...args], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message?: string };
    throw new Error(`tessera usage ${args.join(' ')} failed: ${err.stderr?.trim() || err.message}`);
  }
}

/** Prometheus scraping the soak's four replicas: extenders over HTTP, webhooks over HTTPS verified with the CA bundle
 * file that `tessera certs rotate` rewrites (Prometheus re-reads it whenever it changes). */
export async function startSoakPrometheus(t: Topology, dir: string): Promise<RunningPrometheus> {
  const promDir = join(dir, 'prometheus');
  mkdirSync(promDir, { recursive: true });
  const rules = join(promDir, 'tessera.rules.yml');
  copyFileSync(RULES_FILE, rules);
  const target = (r: Replica) => ({ address: `127.0.0.1:${r.port}`, labels: { replica: r.name } });
  return startPrometheus({
    dir: promDir,
    logDir: t.cluster.dir,
    config: {
      scrapeIntervalSeconds: SCRAPE_INTERVAL_S,
      ruleFiles: [rules],
      jobs: [
        { name: 'tessera-extender', scheme: 'http', targets: t.extenders.map(target) },
        {
          name: 'tessera-webhook',
          scheme: 'https',
          targets: t.webhooks.map(target),
          caFile: join(t.certDir, 'ca.crt'),
        },
      ],
    },
  });
}

export interface ScrapeError {
  readonly time: number;
  readonly replica: string;
  readonly error: string;
}

/** Polls Prometheus's targets for the errors of failed scrapes (the TSDB keeps only up = 0, not why). */
export class ScrapeWatch {
  readonly errors: ScrapeError[] = [];
  private readonly seen = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private readonly prom: RunningPrometheus;

  constructor(prom: RunningPrometheus) {
    this.prom = prom;
  }

  start(everyMs = 1_000): void {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.prom
        .targets()
        .then((targets) => {
          for (const t of targets) {
            if (t.health === 'up' || !t.lastError) continue;
            const key = `${t.scrapeUrl} ${t.lastScrape}`;
            if (this.seen.has(key)) continue;
            this.seen.add(key);
            this.errors.push({
              time: Date.parse(t.lastScrape),
              replica: t.labels.replica ?? t.scrapeUrl,
              error: t.lastError,
            });
          }
        })
        .catch(() => {})
        .finally(() => (this.busy = false));
    }, everyMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

export interface ScrapeReport {
  readonly perReplica: { replica: string; scrapes: number; failed: number; whileDown: number }[];
  /** Failed scrapes no outage of their replica explains: when, which, and the error Prometheus gave if seen. */
  readonly unexplained: string[];
  /** Scrapes that failed on TLS verification (never explained: rotation must not break scraping). */
  readonly certificate: string[];
}

const isCertificateError = (e: string) => /x509|certificate|tls:|unknown authority/i.test(e);

/**
 * Reads every raw `up` sample of the run. A failed scrape is explained when its replica was down then: from one scrape
 * interval before it was killed (a scrape under way dies with it) to `graceMs` after it was started again (a new
 * `tessera serve` process takes a few seconds to listen).
 */
export function scrapeFindings(
  up: readonly PromMatrixSeries[],
  outages: ReadonlyMap<string, readonly { from: number; to: number | null }[]>,
  errors: readonly ScrapeError[],
  graceMs: number,
): ScrapeReport {
  const perReplica: ScrapeReport['perReplica'] = [];
  const unexplained: string[] = [];
  for (const s of up) {
    const replica = s.metric.replica ?? s.metric.instance ?? '?';
    const down = outages.get(replica) ?? [];
    let failed = 0;
    let whileDown = 0;
    for (const [ts, v] of s.values) {
      if (v === '1') continue;
      failed++;
      const at = ts * 1000;
      if (
        down.some((o) => at >= o.from - SCRAPE_INTERVAL_S * 1000 && at <= (o.to ?? Number.POSITIVE_INFINITY) + graceMs)
      )
        whileDown++;
      else {
        const why = errors.find((e) => e.replica === replica && Math.abs(e.time - at) < 1_000)?.error;
        unexplained.push(`${replica} at ${new Date(at).toISOString()}${why ? `: ${why}` : ''}`);
      }
    }
    perReplica.push({ replica, scrapes: s.values.length, failed, whileDown });
  }
  perReplica.sort((a, b) => a.replica.localeCompare(b.replica));
  const certificate = errors
    .filter((e) => isCertificateError(e.error))
    .map((e) => `${e.replica} at ${new Date(e.time).toISOString()}: ${e.error}`);
  return { perReplica, unexplained, certificate };
}

/** Which replicas exported per-pod series during [from, to] (every replica does, from its own informers). */
export async function podSeriesExporters(prom: RunningPrometheus, from: Date, to: Date): Promise<string[]> {
  const window = Math.max(1, Math.round((to.getTime() - from.getTime()) / 1000));
  const r = await prom.query(`count by (replica) (count_over_time(${POD_GPU_EQUIVALENTS}[${window}s]))`, to);
  return (r.result as { metric: Record<string, string> }[]).map((x) => x.metric.replica ?? '?').sort();
}

/** The largest GPU-equivalents held at once over the window, deduplicated across replicas (a sanity figure). */
export async function peakHeld(prom: RunningPrometheus, from: Date, to: Date): Promise<number> {
  const window = Math.max(1, Math.round((to.getTime() - from.getTime()) / 1000));
  const r = await prom.query(`max_over_time((sum(${heldPerPod()}))[${window}s:${USAGE_STEP_S}s])`, to);
  const v = (r.result as { value: [number, string] }[])[0]?.value[1];
  return v === undefined ? 0 : Number(v);
}

export interface ChargebackFinding {
  readonly invariant: string;
  readonly subject: string;
  readonly message: string;
}

export interface ChargebackResult {
  readonly from: string;
  readonly to: string;
  /** Snapshot gaps longer than twice the cadence (ms). */
  readonly gaps: readonly number[];
  readonly comparison: UsageComparison;
  /** `tessera usage --prometheus ... -o table`, as printed. */
  readonly table: string;
  readonly scrapes: ScrapeReport;
  readonly exporters: readonly string[];
  readonly peak: number;
  /** Recording rules loaded and healthy, and how many tenants their 5-minute GPU-hours cover at the window's end. */
  readonly rules: { readonly healthy: number; readonly total: number; readonly tenants: number };
  readonly findings: readonly ChargebackFinding[];
}

export interface ChargebackCheck {
  readonly prom: RunningPrometheus;
  readonly watch: ScrapeWatch;
  /** When Prometheus started (ms since the epoch): every `up` sample since counts. */
  readonly promStartedAt: number;
  /** The soak's snapshot directory (with policy/). */
  readonly dir: string;
  readonly from: Date;
  readonly to: Date;
  readonly replicas: readonly Replica[];
  readonly gaps: SnapshotGaps;
}

/** Everything the soak checks of chargeback once the cluster is quiet and its last snapshot taken. */
export async function checkChargeback(c: ChargebackCheck): Promise<ChargebackResult> {
  const findings: ChargebackFinding[] = [];
  // Scrapes stamped up to `to` have finished one scrape timeout later.
  const settled = c.to.getTime() + (2 * SCRAPE_INTERVAL_S + 1) * 1000 - Date.now();
  if (settled > 0) await new Promise((r) => setTimeout(r, settled));
  const window = ['--from', c.from.toISOString(), '--to', c.to.toISOString()];
  const fromProm = ['--prometheus', c.prom.url, '--step', `${USAGE_STEP_S}s`];
  const [fromPrometheus, fromSnapshots, printed] = await Promise.all([
    tesseraUsage([...window, ...fromProm, '--json']),
    tesseraUsage([...window, '--snapshots', c.dir, '--json']),
    tesseraUsage([...window, ...fromProm]),
  ]);
  const prometheus = JSON.parse(fromPrometheus) as UsageReport;
  const snapshots = JSON.parse(fromSnapshots) as UsageReport;
  const table = printed.trimEnd();
  const comparison = compareUsage(snapshots, prometheus, TOLERANCE, c.gaps.allowance);
  for (const r of [...comparison.rows, comparison.total])
    if (!r.ok) findings.push({ invariant: 'chargeback-agrees', subject: 'usage', message: describeRow(r) });

  const now = new Date();
  const since = Math.ceil((now.getTime() - c.promStartedAt) / 1000) + SCRAPE_INTERVAL_S;
  const up = (await c.prom.query(`up{job=~"tessera-.+"}[${since}s]`, now)).result as PromMatrixSeries[];
  const scrapes = scrapeFindings(
    up,
    new Map(c.replicas.map((r) => [r.name, r.outages])),
    c.watch.errors,
    SCRAPE_GRACE_MS,
  );
  for (const u of scrapes.unexplained)
    findings.push({
      invariant: 'scrapes-survive',
      subject: 'prometheus',
      message: `a scrape failed while its replica ran: ${u}`,
    });
  for (const e of scrapes.certificate)
    findings.push({ invariant: 'scrapes-survive', subject: 'prometheus', message: `a scrape failed on TLS: ${e}` });
  const down = (await c.prom.targets()).filter((t) => t.health !== 'up');
  for (const t of down)
    findings.push({
      invariant: 'scrapes-survive',
      subject: t.labels.replica ?? t.scrapeUrl,
      message: `not scraped at the end: ${t.health} ${t.lastError}`,
    });

  const groups = await c.prom.rules();
  const rules = groups.flatMap((g) => g.rules);
  for (const r of rules.filter((r) => r.health !== 'ok'))
    findings.push({ invariant: 'recording-rules', subject: r.name, message: `${r.health}: ${r.lastError ?? ''}` });
  const tenants = (await c.prom.query('tenant:tessera_gpu_hours:5m', c.to)).result.length;
  if (rules.length === 0 || tenants === 0)
    findings.push({
      invariant: 'recording-rules',
      subject: 'tenant:tessera_gpu_hours:5m',
      message: `${rules.length} rules loaded; tenant:tessera_gpu_hours:5m has ${tenants} series at the window's end`,
    });
  const exporters = await podSeriesExporters(c.prom, c.from, c.to);
  const peak = await peakHeld(c.prom, c.from, c.to);
  return {
    from: c.from.toISOString(),
    to: c.to.toISOString(),
    gaps: c.gaps.gaps,
    comparison,
    table,
    scrapes,
    exporters,
    peak,
    rules: { healthy: rules.filter((r) => r.health === 'ok').length, total: rules.length, tenants },
    findings,
  };
}

/** How long after a replica is started again its failed scrapes are still explained by its outage. */
export const SCRAPE_GRACE_MS = 30_000;
