// `tessera usage`: GPU-hours per tenant, namespace and pool for a time window, from Prometheus (the extender's per-pod
// series) or offline from a directory of cluster snapshots (DESIGN.md, "A living cluster"). Table, CSV or JSON.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gpuHoursFromSnapshots, type UsageReport } from '../core/chargeback/gpu-hours.ts';
import { gpuHoursQuery, usageFromQueryResult } from '../core/chargeback/prometheus-query.ts';
import { type ClusterSnapshot, readClusterSnapshot } from '../core/invariants/cluster-snapshot.ts';
import { loadPolicy } from './policy-files.ts';
import { USAGE_USAGE } from './help.ts';

const UNITS: Readonly<Record<string, number>> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseTime(text: string, now: Date): Date {
  if (text === 'now') return now;
  const relative = /^-(\d+(?:\.\d+)?)([smhd])$/.exec(text);
  if (relative) return new Date(now.getTime() - Number(relative[1]) * UNITS[relative[2]!]!);
  const t = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(text) || Number.isNaN(t)) {
    throw new Error(`"${text}" is not a time; use RFC 3339 (2026-11-27T09:00:00Z), "now", or -1h, -30m, -7d`);
  }
  return new Date(t);
}

function parseStep(text: string): number {
  const m = /^(\d+)(s|m)$/.exec(text);
  if (!m || Number(m[1]) === 0)
    throw new Error(`--step "${text}" must be a whole number of seconds or minutes, e.g. 15s`);
  return Number(m[1]) * (m[2] === 'm' ? 60 : 1);
}

export function readSnapshotDir(dir: string): ClusterSnapshot[] {
  if (!existsSync(dir)) throw new Error(`${dir}: no such directory`);
  const files = readdirSync(dir)
    .filter((f) => /^snapshot-.*\.json$/.test(f))
    .sort();
  if (files.length < 2)
    throw new Error(`${dir} holds ${files.length} snapshot-*.json file(s); at least two are needed`);
  return files.map((f) => {
    const snapshot = readClusterSnapshot(JSON.parse(readFileSync(join(dir, f), 'utf8')));
    if (typeof snapshot === 'string') throw new Error(`${join(dir, f)}: ${snapshot}`);
    return snapshot;
  });
}

export async function usageFromPrometheus(
  url: string,
  from: Date,
  to: Date,
  stepSeconds: number,
): Promise<UsageReport> {
  const query = gpuHoursQuery((to.getTime() - from.getTime()) / 1000, stepSeconds);
  const endpoint = new URL('api/v1/query', url.endsWith('/') ? url : `${url}/`);
  endpoint.searchParams.set('query', query);
  endpoint.searchParams.set('time', String(to.getTime() / 1000));
  let res: Response;
  try {
    res = await fetch(endpoint, { signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    throw new Error(`cannot reach Prometheus at ${url}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const body: unknown = await res.json().catch(() => null);
  const report = usageFromQueryResult(body, from, to);
  if (typeof report === 'string') throw new Error(`${endpoint.origin}: ${report}`);
  return report;
}

const hours = (n: number) => n.toFixed(3);

export function formatUsage(report: UsageReport, output: 'table' | 'csv'): string {
  if (output === 'csv') {
    const quote = (s: string) => (/[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
    return [
      'tenant,namespace,pool,gpu_hours',
      ...report.rows.map((r) => [r.tenant, r.namespace, r.pool].map(quote).concat(String(r.gpuHours)).join(',')),
    ].join('\n');
  }
  const head = ['TENANT', 'NAMESPACE', 'POOL', 'GPU-HOURS'];
  const rows = report.rows.map((r) => [r.tenant || '-', r.namespace, r.pool || '-', hours(r.gpuHours)]);
  const total = report.rows.reduce((s, r) => s + r.gpuHours, 0);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return [
    `GPU-hours from ${report.from} to ${report.to}`,
    line(head),
    ...rows.map(line),
    line(['total', '', '', hours(total)]),
  ].join('\n');
}

export async function usageCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      from: { type: 'string' },
      to: { type: 'string', default: 'now' },
      prometheus: { type: 'string' },
      step: { type: 'string', default: '15s' },
      snapshots: { type: 'string' },
      policy: { type: 'string', multiple: true },
      output: { type: 'string', short: 'o', default: 'table' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE_USAGE);
    return 0;
  }
  const output = values.json ? 'json' : values.output;
  if (output !== 'table' && output !== 'csv' && output !== 'json')
    throw new Error(`-o ${output}: use table, csv or json`);
  if (values.from === undefined) throw new Error(`--from is required\n${USAGE_USAGE}`);
  if ((values.prometheus === undefined) === (values.snapshots === undefined)) {
    throw new Error(`give exactly one of --prometheus URL and --snapshots DIR\n${USAGE_USAGE}`);
  }
  const now = new Date();
  const from = parseTime(values.from, now);
  const to = parseTime(values.to, now);
  if (to <= from) throw new Error(`--to (${to.toISOString()}) must be after --from (${from.toISOString()})`);
  let report: UsageReport;
  if (values.prometheus !== undefined) {
    report = await usageFromPrometheus(values.prometheus, from, to, parseStep(values.step));
  } else {
    const dir = values.snapshots!;
    const policyPaths = values.policy ?? [join(dir, 'policy')];
    report = gpuHoursFromSnapshots(readSnapshotDir(dir), loadPolicy(policyPaths), from, to);
  }
  console.log(output === 'json' ? JSON.stringify(report) : formatUsage(report, output));
  return 0;
}
