// The FGD artifact's published per-run results (analysis_allo_discrete.csv: allocation % per arrived load 0..130, one
// row per workload x policy x seed), summarised for side-by-side comparison.

export interface PublishedSummary {
  readonly policy: string;
  readonly seeds: number;
  /** Mean unallocated GPU % at each requested load. */
  readonly mean: Readonly<Record<string, number>>;
  readonly sd: Readonly<Record<string, number>>;
}

export function meanAndSd(values: readonly number[]): { mean: number; sd: number } {
  if (values.length === 0) return { mean: Number.NaN, sd: Number.NaN };
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.length < 2 ? 0 : values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1);
  return { mean, sd: Math.sqrt(variance) };
}

/** Summaries of every policy published for `workload` (e.g. "openb_pod_list_default"), in the file's policy order. */
export function publishedFor(csv: string, workload: string, loads: readonly number[]): PublishedSummary[] {
  const lines = csv.split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = (lines[0] ?? '').split(',');
  const col = (k: number): number => header.indexOf(String(k));
  const byPolicy = new Map<string, number[][]>();
  for (const line of lines.slice(1)) {
    const cells = line.split(',');
    if (cells[0] !== workload) continue;
    const policy = cells[1]!;
    const row = loads.map((k) => 100 - Number(cells[col(k)]));
    const list = byPolicy.get(policy);
    if (list) list.push(row);
    else byPolicy.set(policy, [row]);
  }
  return [...byPolicy.entries()].map(([policy, rows]) => {
    const mean: Record<string, number> = {};
    const sd: Record<string, number> = {};
    loads.forEach((k, i) => {
      const s = meanAndSd(rows.map((r) => r[i]!));
      mean[String(k)] = s.mean;
      sd[String(k)] = s.sd;
    });
    return { policy, seeds: rows.length, mean, sd };
  });
}
