// `tessera simulate --slivers`: where the free GPU capacity sits at 100 % arrived load, per strategy (mean over seeds)
// and per seed, as shares of GPU capacity with the number of GPUs holding it.

import type { ReplayResult } from '../core/simulation/replay.ts';
import {
  meanDecomposition,
  SLIVER_BUCKET,
  SLIVER_BUCKETS,
  type SliverDecomposition,
} from '../core/simulation/slivers.ts';

const pct = (milli: number, d: SliverDecomposition) => ((milli / d.capacityMilli) * 100).toFixed(2);
const total = (d: SliverDecomposition) =>
  d.strandedMilli + d.wholeGpus * 1000 + d.sliverMilli.reduce((a, b) => a + b, 0);
const range = (b: number) => `${b * SLIVER_BUCKET}-${b * SLIVER_BUCKET + SLIVER_BUCKET - 1} m`;

function table(d: SliverDecomposition): string[] {
  const gpus = (n: number) => `${n.toFixed(n % 1 === 0 ? 0 : 1)} GPUs`.padStart(12);
  const out = [
    `  ${'stranded (no GPU pod fits CPU/memory)'.padEnd(40)}${pct(d.strandedMilli, d).padStart(6)} %${gpus(d.strandedGpus)}`,
    `  ${'whole free GPUs'.padEnd(40)}${pct(d.wholeGpus * 1000, d).padStart(6)} %${gpus(d.wholeGpus)}`,
  ];
  for (let b = 0; b < SLIVER_BUCKETS; b++)
    if (d.sliverGpus[b]! > 0)
      out.push(
        `  ${`slivers ${range(b)} free`.padEnd(40)}${pct(d.sliverMilli[b]!, d).padStart(6)} %${gpus(d.sliverGpus[b]!)}`,
      );
  out.push(`  ${'free in all'.padEnd(40)}${pct(total(d), d).padStart(6)} %`);
  return out;
}

/** One line per seed: stranded, then each non-empty sliver bucket, in % of capacity. */
function seedLine(r: ReplayResult): string {
  const d = r.slivers!;
  const parts = [`stranded ${pct(d.strandedMilli, d)}`, `whole ${pct(d.wholeGpus * 1000, d)}`];
  for (let b = 0; b < SLIVER_BUCKETS; b++)
    if (d.sliverGpus[b]! > 0) parts.push(`${range(b)} ${pct(d.sliverMilli[b]!, d)} (${d.sliverGpus[b]})`);
  return `  seed ${r.seed}: ${parts.join(', ')}; free ${pct(total(d), d)} %`;
}

export function sliversReport(runs: readonly ReplayResult[]): string {
  const out: string[] = [];
  for (const strategy of new Set(runs.map((r) => r.strategy))) {
    const mine = runs.filter((r) => r.strategy === strategy && r.slivers !== null);
    if (mine.length === 0) continue;
    out.push(
      `free GPU capacity at 100 % arrived, tessera:${strategy}, mean over ${mine.length} seed(s) (% of GPU capacity, GPUs):`,
    );
    out.push(...table(meanDecomposition(mine.map((r) => r.slivers!))));
    for (const r of mine) out.push(seedLine(r));
  }
  return out.join('\n');
}
