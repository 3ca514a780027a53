// The chargeback picture: GPU-equivalents each tenant held over a window, from Prometheus (the same per-pod series and
// the same deduplication across replicas as `tessera usage`), with the tenant's quota and the faults of a soak marked,
// as a self-contained SVG written by hand (no charting dependency).
//
//   npm run chargeback:plot -- --prometheus URL --from TIME --to TIME [--faults DIR/faults.json] --out FILE.svg
//   npm run soak -- ... --plot FILE.svg        (the same, from the soak's own Prometheus at the end of the run)

import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { gpuHoursQuery, heldBy } from '../../core/chargeback/prometheus-query.ts';

export interface TenantSeries {
  readonly tenant: string;
  /** [ms since the epoch, GPU-equivalents held] */
  readonly points: readonly (readonly [number, number])[];
  readonly quota: number | null;
  readonly gpuHours: number;
}

export interface PlotInput {
  readonly title: string;
  readonly from: number;
  readonly to: number;
  readonly tenants: readonly TenantSeries[];
  readonly faults: readonly { readonly time: number; readonly kind: string }[];
}

const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#9c755f'];
const FAULT_LABELS: Readonly<Record<string, string>> = {
  'extender-leader-kill': 'leader killed',
  'webhook-replica-kill': 'webhook killed',
  'scheduler-restart': 'scheduler restart',
  'apiserver-restart': 'apiserver restart',
  'kwok-restart': 'kwok restart',
  'policy-corrupt': 'policy broken',
  'cert-rotation': 'cert rotation',
};

const esc = (s: string) =>
  s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
const utc = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
const fmt = (n: number) => (Math.round(n * 10) / 10).toString();

/** A "nice" tick step for a range: 1, 2 or 5 times a power of ten, about `count` ticks. */
export function tickStep(range: number, count: number): number {
  if (!(range > 0)) return 1;
  const raw = range / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
}

/** Step-after polygon (a value holds until the next sample): how the usage query integrates it. */
function areaPath(points: readonly (readonly [number, number])[], x: (t: number) => number, y: (v: number) => number) {
  if (points.length === 0) return '';
  const d: string[] = [`M${fmt(x(points[0]![0]))},${fmt(y(0))}`];
  for (let i = 0; i < points.length; i++) {
    const [t, v] = points[i]!;
    const next = points[i + 1]?.[0] ?? t;
    d.push(`L${fmt(x(t))},${fmt(y(v))}`, `L${fmt(x(next))},${fmt(y(v))}`);
  }
  d.push(`L${fmt(x(points.at(-1)![0]))},${fmt(y(0))}Z`);
  return d.join('');
}

/** The SVG: a stacked panel of all tenants with the faults named, then one panel per tenant with its quota. */
export function renderChargebackSvg(input: PlotInput): string {
  const width = 920;
  const left = 56;
  const right = 200;
  const plotW = width - left - right;
  const stackH = 170;
  const panelH = 90;
  const gap = 34;
  // The faults' names stand in a band above the first panel.
  const band = input.faults.length > 0 ? 104 : 0;
  const top = 70 + band;
  const tenants = [...input.tenants].sort((a, b) => a.tenant.localeCompare(b.tenant));
  const height = top + stackH + gap + tenants.length * (panelH + gap) + 20;
  const span = Math.max(1, input.to - input.from);
  const x = (t: number) => left + ((t - input.from) / span) * plotW;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    `<title>${esc(input.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">${esc(input.title)}</text>`,
    `<text x="${left}" y="40" fill="#555">GPU-equivalents held, from Prometheus (tessera_pod_gpu_equivalents, the extender leader's series), ${utc(input.from)} to ${utc(input.to)} UTC</text>`,
    `<text x="${left}" y="56" fill="#555">Dashed red lines: faults injected. Dashed black lines: the tenant's quota. GPU-hours: tessera usage's query over the same window.</text>`,
  );
  const minutes = span / 60_000;
  const xStep = tickStep(minutes, 8);
  const xAxis = (y0: number, h: number, labels: boolean) => {
    for (let m = 0; m <= minutes + 1e-9; m += xStep) {
      const px = fmt(x(input.from + m * 60_000));
      out.push(`<line x1="${px}" y1="${y0}" x2="${px}" y2="${y0 + h}" stroke="#eee"/>`);
      if (labels) out.push(`<text x="${px}" y="${y0 + h + 13}" text-anchor="middle" fill="#555">${fmt(m)}</text>`);
    }
  };
  const yAxis = (y0: number, h: number, max: number) => {
    const step = tickStep(max, 4);
    for (let v = 0; v <= max + 1e-9; v += step) {
      const py = fmt(y0 + h - (v / max) * h);
      out.push(
        `<line x1="${left}" y1="${py}" x2="${left + plotW}" y2="${py}" stroke="#e4e4e4"/>`,
        `<text x="${left - 6}" y="${py}" dy="4" text-anchor="end" fill="#555">${fmt(v)}</text>`,
      );
    }
  };
  const faultLines = (y0: number, h: number, labels: boolean) => {
    let lastLabel = Number.NEGATIVE_INFINITY;
    for (const f of [...input.faults].sort((a, b) => a.time - b.time)) {
      if (f.time < input.from || f.time > input.to) continue;
      const px = x(f.time);
      out.push(
        `<line x1="${fmt(px)}" y1="${y0}" x2="${fmt(px)}" y2="${y0 + h}" stroke="#c44" stroke-dasharray="2,3" stroke-width="0.8"/>`,
      );
      if (!labels) continue;
      // Rotated names, read bottom-up, ending just above the panel; nudged right when two faults are close.
      const lx = Math.max(px, lastLabel + 11);
      lastLabel = lx;
      out.push(
        `<line x1="${fmt(px)}" y1="${y0}" x2="${fmt(lx)}" y2="${y0 - 6}" stroke="#c44" stroke-width="0.8"/>`,
        `<text transform="translate(${fmt(lx + 3)},${y0 - 8}) rotate(-90)" fill="#a33" font-size="10">${esc(FAULT_LABELS[f.kind] ?? f.kind)}</text>`,
      );
    }
  };

  // Stacked: every tenant, on a common time grid (the union of their sample times, each value held until its next).
  const grid = [...new Set(tenants.flatMap((t) => t.points.map((p) => p[0])))].sort((a, b) => a - b);
  const at = (s: TenantSeries) => {
    const values = new Map(s.points.map(([t, v]) => [t, v]));
    return grid.map((t) => values.get(t) ?? 0);
  };
  const stacked = tenants.map(at);
  const totals = grid.map((_, i) => stacked.reduce((n, s) => n + s[i]!, 0));
  const stackMax = Math.max(1, ...totals) * 1.1;
  const y0 = top;
  // Its name to the right, above the legend: the faults' names take the space above the panel.
  out.push(`<text x="${left + plotW + 16}" y="${y0 - 6}" font-weight="bold">all tenants, stacked</text>`);
  yAxis(y0, stackH, stackMax);
  xAxis(y0, stackH, true);
  const base = grid.map(() => 0);
  stacked.forEach((values, i) => {
    const lower = [...base];
    for (let k = 0; k < grid.length; k++) base[k]! += values[k]!;
    const sy = (v: number) => y0 + stackH - (v / stackMax) * stackH;
    const d: string[] = [];
    for (let k = 0; k < grid.length; k++) {
      const next = grid[k + 1] ?? grid[k]!;
      d.push(`${k === 0 ? 'M' : 'L'}${fmt(x(grid[k]!))},${fmt(sy(base[k]!))}`, `L${fmt(x(next))},${fmt(sy(base[k]!))}`);
    }
    for (let k = grid.length - 1; k >= 0; k--) {
      const next = grid[k + 1] ?? grid[k]!;
      d.push(`L${fmt(x(next))},${fmt(sy(lower[k]!))}`, `L${fmt(x(grid[k]!))},${fmt(sy(lower[k]!))}`);
    }
    if (grid.length > 0) out.push(`<path d="${d.join('')}Z" fill="${COLORS[i % COLORS.length]}" fill-opacity="0.85"/>`);
  });
  faultLines(y0, stackH, true);
  out.push(`<rect x="${left}" y="${y0}" width="${plotW}" height="${stackH}" fill="none" stroke="#999"/>`);
  out.push(`<text x="${left + plotW / 2}" y="${y0 + stackH + 27}" text-anchor="middle" fill="#555">minutes</text>`);
  // Legend: tenant, GPU-hours over the window, quota.
  tenants.forEach((t, i) => {
    const ly = y0 + 10 + i * 34;
    out.push(
      `<rect x="${left + plotW + 16}" y="${ly}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>`,
      `<text x="${left + plotW + 34}" y="${ly + 10}" font-weight="bold">${esc(t.tenant || '(no tenant)')}</text>`,
      `<text x="${left + plotW + 34}" y="${ly + 24}" fill="#555">${t.gpuHours.toFixed(3)} GPU-h${t.quota !== null ? `, quota ${fmt(t.quota)}` : ''}</text>`,
    );
  });

  // One panel per tenant, with its quota.
  tenants.forEach((t, i) => {
    const py0 = top + stackH + gap + i * (panelH + gap) + 10;
    const peak = Math.max(0, ...t.points.map((p) => p[1]));
    const max = Math.max(1, peak, t.quota ?? 0) * 1.1;
    const sy = (v: number) => py0 + panelH - (v / max) * panelH;
    out.push(`<text x="${left}" y="${py0 - 6}" font-weight="bold">${esc(t.tenant || '(no tenant)')}</text>`);
    yAxis(py0, panelH, max);
    xAxis(py0, panelH, false);
    out.push(`<path d="${areaPath(t.points, x, sy)}" fill="${COLORS[i % COLORS.length]}" fill-opacity="0.85"/>`);
    if (t.quota !== null) {
      const qy = fmt(sy(t.quota));
      out.push(
        `<line x1="${left}" y1="${qy}" x2="${left + plotW}" y2="${qy}" stroke="#222" stroke-dasharray="6,4"/>`,
        `<text x="${left + plotW + 6}" y="${qy}" dy="4" fill="#222">quota ${fmt(t.quota)}</text>`,
      );
    }
    faultLines(py0, panelH, false);
    out.push(`<rect x="${left}" y="${py0}" width="${plotW}" height="${panelH}" fill="none" stroke="#999"/>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

interface Matrix {
  metric: Record<string, string>;
  values: [number, string][];
}

async function prom<T>(base: string, path: string, params: Record<string, string>): Promise<T> {
  const url = new URL(path, base.endsWith('/') ? base : `${base}/`);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  const body = (await res.json().catch(() => null)) as { status?: string; error?: string; data?: T } | null;
  if (body?.status !== 'success')
    throw new Error(`${url.origin}${url.pathname}: ${body?.error ?? `HTTP ${res.status}`}`);
  return body.data as T;
}

/** Reads the window from Prometheus: held GPU-equivalents per tenant, quotas at the end, GPU-hours over the window. */
export async function chargebackPlotInput(
  url: string,
  from: Date,
  to: Date,
  faults: readonly { time: string; kind: string }[],
  title: string,
): Promise<PlotInput> {
  const seconds = (to.getTime() - from.getTime()) / 1000;
  const step = Math.max(1, Math.ceil(seconds / 600));
  const range = await prom<{ result: Matrix[] }>(url, 'api/v1/query_range', {
    query: heldBy(['tenant']),
    start: String(from.getTime() / 1000),
    end: String(to.getTime() / 1000),
    step: `${step}s`,
  });
  const time = String(to.getTime() / 1000);
  const quotas = await prom<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
    url,
    'api/v1/query',
    { query: 'max by (tenant) (tessera_tenant_quota_gpu_equivalents)', time },
  );
  const hours = await prom<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
    url,
    'api/v1/query',
    { query: `sum by (tenant) (${gpuHoursQuery(seconds, 1)})`, time },
  );
  const quota = new Map(quotas.result.map((r) => [r.metric.tenant ?? '', Number(r.value[1])]));
  const gpuHours = new Map(hours.result.map((r) => [r.metric.tenant ?? '', Number(r.value[1])]));
  const tenants = range.result.map((s): TenantSeries => {
    const tenant = s.metric.tenant ?? '';
    // A step where the tenant held nothing has no sample: fill the grid with zeros so the area drops to 0 there.
    const values = new Map(s.values.map(([t, v]) => [Math.round(t * 1000), Number(v)]));
    const points: [number, number][] = [];
    for (let t = from.getTime(); t <= to.getTime(); t += step * 1000) points.push([t, values.get(t) ?? 0]);
    return { tenant, points, quota: quota.get(tenant) ?? null, gpuHours: gpuHours.get(tenant) ?? 0 };
  });
  return {
    title,
    from: from.getTime(),
    to: to.getTime(),
    tenants,
    faults: faults.map((f) => ({ time: Date.parse(f.time), kind: f.kind })),
  };
}

export async function writeChargebackPlot(
  url: string,
  from: Date,
  to: Date,
  faults: readonly { time: string; kind: string }[],
  file: string,
  title = 'Tessera soak: GPU-equivalents per tenant, with the faults injected',
): Promise<void> {
  writeFileSync(file, renderChargebackSvg(await chargebackPlotInput(url, from, to, faults, title)));
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      prometheus: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      faults: { type: 'string' },
      out: { type: 'string' },
      title: { type: 'string' },
    },
  });
  if (!values.prometheus || !values.from || !values.to || !values.out) {
    console.error(
      'npm run chargeback:plot -- --prometheus URL --from TIME --to TIME [--faults DIR/faults.json] [--title TEXT] --out FILE.svg',
    );
    return 2;
  }
  const { parseTime } = await import('../../cli/usage.ts');
  const now = new Date();
  const faults = values.faults
    ? (JSON.parse(readFileSync(values.faults, 'utf8')) as { time: string; kind: string }[])
    : [];
  await writeChargebackPlot(
    values.prometheus,
    parseTime(values.from, now),
    parseTime(values.to, now),
    faults,
    values.out,
    ...(values.title ? [values.title] : []),
  );
  console.log(`wrote ${values.out}`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`)
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(e instanceof Error ? e.message : String(e));
      process.exit(1);
    },
  );
