// `tessera simulate`: replays a trace through the core and prints unallocated GPU % per arrived load, beside the FGD
// paper's published numbers for the same workload.

import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { publishedFor, meanAndSd, type PublishedSummary } from '../core/simulation/published.ts';
import { REPORTED_LOADS, replay, type ReplayResult } from '../core/simulation/replay.ts';
import { parseTraceNodes, parseTracePods, traceWarnings } from '../core/simulation/trace.ts';
import { DEFAULT_STRATEGY, STRATEGIES, strategyNamed } from '../core/scoring/strategy-registry.ts';
import { parseSeeds } from './seeds.ts';
import { SIMULATE_USAGE, UsageError } from './help.ts';
import { sliversReport } from './slivers-report.ts';

function fmt(v: number | undefined): string {
  return v === undefined || Number.isNaN(v) ? '   -  ' : v.toFixed(2).padStart(6);
}

function decisionsCsv(runs: readonly ReplayResult[]): string {
  const lines = ['seed,index,pod,node,gpus'];
  for (const run of runs) {
    for (const d of run.decisions) {
      lines.push(
        `${run.seed},${d.index},${d.pod},${d.node ?? ''},${d.gpus.map((g) => `${g.index}:${g.milli}`).join('|')}`,
      );
    }
  }
  return lines.join('\n') + '\n';
}

function humanReport(
  workload: string,
  runs: readonly ReplayResult[],
  published: readonly PublishedSummary[],
  seconds: number,
): string {
  const out: string[] = [];
  const strategies = [...new Set(runs.map((r) => r.strategy))];
  const seeds = [...new Set(runs.map((r) => r.seed))];
  out.push(
    `workload ${workload}: ${runs[0]?.arrivals ?? 0} arrivals per run, seeds ${seeds.join(',')} (${seconds.toFixed(1)} s)`,
  );
  out.push('unallocated GPU % (mean over seeds; lower is better) at arrived load:');
  const loads = REPORTED_LOADS.map(String);
  out.push(`${'policy'.padEnd(26)}${loads.map((l) => `${l}%`.padStart(8)).join('')}    sd@100`);
  for (const s of strategies) {
    const mine = runs.filter((r) => r.strategy === s);
    const cells = loads.map((l) => fmt(meanAndSd(mine.map((r) => r.unallocated[l]!)).mean).padStart(8));
    const sd = meanAndSd(mine.map((r) => r.unallocated['100']!)).sd;
    out.push(`${`tessera:${s}`.padEnd(26)}${cells.join('')}    ${fmt(sd)}`);
  }
  for (const p of published) {
    const cells = loads.map((l) => fmt(p.mean[l]).padStart(8));
    out.push(`${`published:${p.policy}`.padEnd(26)}${cells.join('')}    ${fmt(p.sd['100'])}`);
  }
  if (published.length === 0) out.push('(no published results found for this workload)');
  return out.join('\n');
}

/** Where progress goes: stderr, and only when it is a terminal (never into a pipe, a file or --json stdout). */
export interface ProgressStream {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

export function simulateCommand(argv: string[], progress: ProgressStream = process.stderr): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      nodes: { type: 'string' },
      pods: { type: 'string' },
      strategy: { type: 'string' },
      seeds: { type: 'string', default: '42' },
      tune: { type: 'string', default: '1.3' },
      published: { type: 'string' },
      decisions: { type: 'string' },
      slivers: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(SIMULATE_USAGE);
    return 0;
  }
  if (!values.nodes || !values.pods) throw new UsageError('--nodes and --pods are required', SIMULATE_USAGE);
  const tune = Number(values.tune);
  if (!(tune > 0 && tune <= 5))
    throw new UsageError(`--tune ${values.tune}: expected a share of capacity such as 1.3`, SIMULATE_USAGE);
  const names =
    values.strategy === 'all'
      ? Object.keys(STRATEGIES)
      : (values.strategy ?? DEFAULT_STRATEGY).split(',').map((s) => s.trim());
  const strategies = names.map(strategyNamed);
  const seeds = parseSeeds(values.seeds);
  const nodes = parseTraceNodes(readFileSync(values.nodes, 'utf8'));
  const pods = parseTracePods(readFileSync(values.pods, 'utf8'));
  const warnings = traceWarnings(nodes, pods);
  for (const w of warnings) console.error(`warning: ${w}`);
  const workload = basename(values.pods).replace(/\.csv$/, '');
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const runs: ReplayResult[] = [];
  const total = strategies.length * seeds.length;
  const tty = progress.isTTY === true;
  for (const strategy of strategies)
    for (const seed of seeds) {
      if (tty)
        progress.write(
          `\r\x1b[Ksimulating ${workload}: run ${runs.length + 1}/${total} (${strategy.name}, seed ${seed}), ${((performance.now() - started) / 1000).toFixed(0)} s`,
        );
      runs.push(replay(nodes, pods, { seed, strategy, tune }));
    }
  if (tty) progress.write('\r\x1b[K');
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStarted);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  if (values.decisions) writeFileSync(values.decisions, decisionsCsv(runs));
  const publishedPath =
    values.published ?? join(dirname(values.pods), 'fgd-expected-results', 'analysis_allo_discrete.csv');
  const published = existsSync(publishedPath)
    ? publishedFor(readFileSync(publishedPath, 'utf8'), workload, REPORTED_LOADS)
    : [];
  if (values.json) {
    const out = {
      workload,
      tune,
      seconds,
      cpuSeconds,
      runs: runs.map((r) => ({
        seed: r.seed,
        strategy: r.strategy,
        arrivals: r.arrivals,
        failed: r.failed,
        unallocated: r.unallocated,
        ...(values.slivers ? { slivers: r.slivers } : {}),
      })),
      published: published.map((p) => ({ policy: p.policy, seeds: p.seeds, unallocated: p.mean, sd: p.sd })),
      warnings,
    };
    console.log(JSON.stringify(out, null, 2));
  } else {
    console.log(humanReport(workload, runs, published, seconds));
    if (values.slivers) console.log(sliversReport(runs));
  }
  return 0;
}
