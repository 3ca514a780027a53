// The README's packing table, built from simulator runs and the FGD artifact's published results: pure functions, so
// that the table can only say what a run measured (test/bench/readme-packing.ts runs them and rewrites the README).

import { meanAndSd, type PublishedSummary } from '../../core/simulation/published.ts';

/** The published policies, in the table's column order. */
export const PUBLISHED_COLUMNS: readonly { readonly policy: string; readonly title: string }[] = [
  { policy: '06-FGD', title: 'FGD' },
  { policy: '05-BestFit', title: 'BestFit' },
  { policy: '04-GpuPacking', title: 'Packing' },
  { policy: '03-GpuClustering', title: 'Clustering' },
  { policy: '02-DotProd', title: 'DotProd' },
  { policy: '01-Random', title: 'Random' },
];

export interface WorkloadResult {
  /** Short name, e.g. "default" for openb_pod_list_default. */
  readonly workload: string;
  /** Tessera's unallocated GPU % at 100 % arrived load, one per seed. */
  readonly tessera: readonly number[];
  readonly published: readonly PublishedSummary[];
}

export interface TableRun {
  readonly strategy: string;
  readonly seeds: readonly number[];
  readonly results: readonly WorkloadResult[];
  /** CPU seconds the runs took (summed), the wall-clock seconds of the whole generation, and how many ran at once. */
  readonly cpuSeconds: number;
  readonly wallSeconds: number;
  readonly jobs: number;
  readonly date: string;
}

const LOAD = '100';

const FAMILIES = ['default', 'cpu', 'gpushare', 'multigpu', 'gpuspec'];

/** The table's row order: default first, then each family of workloads by its number (cpu050 before cpu100). */
export function workloadOrder(a: string, b: string): number {
  const parse = (w: string) => {
    const m = /^([a-z]+?)(\d*)$/.exec(w);
    const family = FAMILIES.indexOf(m?.[1] ?? w);
    return [family === -1 ? FAMILIES.length : family, Number(m?.[2] || 0)] as const;
  };
  const [fa, na] = parse(a);
  const [fb, nb] = parse(b);
  return fa - fb || na - nb || (a < b ? -1 : a > b ? 1 : 0);
}

/** "42-51", or "42,44,45" when not a range. */
export function seedText(seeds: readonly number[]): string {
  const contiguous = seeds.every((s, i) => i === 0 || s === seeds[i - 1]! + 1);
  return contiguous && seeds.length > 1 ? `${seeds[0]}-${seeds[seeds.length - 1]}` : seeds.join(',');
}

function alignedTable(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(3, ...rows.map((r) => r[c]!.length)));
  const line = (r: readonly string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`;
  return [line(rows[0]!), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.slice(1).map(line)];
}

/** Words wrapped at 120 columns, as the README is written. */
function wrap(text: string, width = 120): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** The markdown between the README's packing markers: caption, table and a computed summary. */
export function packingSection(run: TableRun): string {
  const header = ['workload', `Tessera (mean ± sd)`, ...PUBLISHED_COLUMNS.map((c) => c.title), 'Tessera vs FGD'];
  const rows: string[][] = [header];
  const better: string[] = [];
  const worse: string[] = [];
  for (const r of [...run.results].sort((a, b) => workloadOrder(a.workload, b.workload))) {
    const mine = meanAndSd(r.tessera);
    const published = PUBLISHED_COLUMNS.map((c) => r.published.find((p) => p.policy === c.policy));
    const values = [mine.mean, ...published.map((p) => p?.mean[LOAD] ?? Number.NaN)];
    const best = Math.min(...values.filter((v) => !Number.isNaN(v)));
    const cell = (v: number, text: string) => (v === best ? `**${text}**` : text);
    const fgd = published[0];
    const delta = fgd ? mine.mean - fgd.mean[LOAD]! : Number.NaN;
    if (fgd) {
      const entry = `${r.workload} (${delta >= 0 ? '+' : ''}${delta.toFixed(2)}, FGD's sd ${fgd.sd[LOAD]!.toFixed(2)})`;
      (delta < 0 ? better : worse).push(entry);
    }
    rows.push([
      r.workload,
      cell(mine.mean, `${mine.mean.toFixed(2)} ± ${mine.sd.toFixed(2)}`),
      ...published.map((p) => (p ? cell(p.mean[LOAD]!, p.mean[LOAD]!.toFixed(2)) : '-')),
      Number.isNaN(delta) ? '-' : `${delta >= 0 ? '+' : ''}${delta.toFixed(2)}`,
    ]);
  }
  const seeds = seedText(run.seeds);
  const publishedSeeds = Math.max(0, ...run.results.flatMap((r) => r.published.map((p) => p.seeds)));
  const minutes = (s: number) => `${(s / 60).toFixed(1)} min`;
  const caption = wrap(
    `Unallocated GPU % at 100 % arrived load (lower is better; the best of each row in bold): Tessera's default ` +
      `strategy (\`${run.strategy}\`), mean ± sd over seeds ${seeds} (${run.seeds.length} seed${run.seeds.length === 1 ? '' : 's'}), ` +
      `beside the means of the paper's published runs (${publishedSeeds} seeds each). Generated by \`npm run readme:packing\` on ${run.date}: ` +
      `${run.results.length * run.seeds.length} runs, ${minutes(run.cpuSeconds)} of CPU, ${minutes(run.wallSeconds)} ` +
      `wall-clock with ${run.jobs} at a time.`,
  );
  const summary = wrap(
    `Tessera's mean is below FGD's on ${better.length} of the ${run.results.length} workloads` +
      (worse.length === 0 ? '.' : `, and not on ${worse.length}: ${worse.join('; ')}.`),
  );
  const lines = [...caption, '', ...alignedTable(rows), '', ...summary];
  return lines.join('\n');
}

/** Replaces what lies between `<!-- name -->` and `<!-- /name -->`; throws when the markers are missing. */
export function replaceBetweenMarkers(text: string, name: string, content: string): string {
  const open = `<!-- ${name} -->`;
  const close = `<!-- /${name} -->`;
  const start = text.indexOf(open);
  const end = text.indexOf(close);
  if (start === -1 || end === -1 || end < start) throw new Error(`the markers ${open} ... ${close} are missing`);
  return `${text.slice(0, start + open.length)}\n${content}\n${text.slice(end)}`;
}
