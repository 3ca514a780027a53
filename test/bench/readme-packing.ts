// `npm run readme:packing`: runs `tessera simulate` over every workload the FGD paper published results for, with the
// seeds given, and rewrites the packing table in docs/packing.md (between <!-- packing --> and <!-- /packing -->) from what the
// runs measured. The table can therefore never drift from the code: run this after changing a strategy.
//
//   node test/bench/readme-packing.ts [--seeds 42-51] [--jobs 2] [--workloads default,cpu050] [--data DIR]
//                                     [--readme docs/packing.md] [--print]
//
// All 17 workloads x 10 seeds take about 20 CPU minutes (measured 19.6; 4-10 s per run), so about 10 minutes with two
// jobs on two idle cores: within the 15 minutes a README refresh may take, so every seed the paper used is run.

import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { publishedFor } from '../../core/simulation/published.ts';
import { REPORTED_LOADS } from '../../core/simulation/replay.ts';
import { DEFAULT_STRATEGY } from '../../core/scoring/strategy-registry.ts';
import { parseSeeds } from '../../cli/seeds.ts';
import { packingSection, replaceBetweenMarkers, type WorkloadResult } from './packing-table.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const CLI = join(ROOT, 'cli', 'tessera.ts');
const PREFIX = 'openb_pod_list_';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '42-51' },
    jobs: { type: 'string', default: String(Math.min(2, availableParallelism())) },
    workloads: { type: 'string' },
    data: { type: 'string', default: join(ROOT, '..', 'shared', 'data', 'alibaba-openb') },
    readme: { type: 'string', default: join(ROOT, 'docs', 'packing.md') },
    print: { type: 'boolean', default: false },
  },
});
const seeds = parseSeeds(values.seeds);
const jobs = Math.max(1, Number(values.jobs));
const publishedCsv = readFileSync(join(values.data, 'fgd-expected-results', 'analysis_allo_discrete.csv'), 'utf8');
const published = [
  ...new Set(
    publishedCsv
      .split('\n')
      .slice(1)
      .map((l) => l.split(',')[0]!)
      .filter((w) => w.startsWith(PREFIX)),
  ),
].map((w) => w.slice(PREFIX.length));
const workloads = values.workloads ? values.workloads.split(',').map((w) => w.trim()) : published;

let cpuSeconds = 0;
const children = new Set<ReturnType<typeof spawn>>();
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    for (const c of children) c.kill(signal);
    process.exit(130);
  });

function simulate(workload: string): Promise<number[]> {
  const args = [
    CLI,
    'simulate',
    '--nodes',
    join(values.data, 'openb_node_list_gpu_node.csv'),
    '--pods',
    join(values.data, `${PREFIX}${workload}.csv`),
    '--seeds',
    values.seeds,
    '--strategy',
    DEFAULT_STRATEGY,
    '--json',
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('close', (code) => {
      children.delete(child);
      if (code !== 0) return reject(new Error(`tessera simulate for ${workload} exited ${code}`));
      const json = JSON.parse(out) as {
        cpuSeconds: number;
        runs: { seed: number; unallocated: Record<string, number> }[];
      };
      cpuSeconds += json.cpuSeconds;
      resolve(seeds.map((s) => json.runs.find((r) => r.seed === s)!.unallocated['100']!));
    });
  });
}

const started = performance.now();
const results = new Map<string, WorkloadResult>();
const queue = [...workloads];
const progress = (line: string) => process.stderr.write(`${line}\n`);
await Promise.all(
  Array.from({ length: jobs }, async () => {
    for (let w = queue.shift(); w !== undefined; w = queue.shift()) {
      const t0 = performance.now();
      const tessera = await simulate(w);
      results.set(w, {
        workload: w,
        tessera,
        published: publishedFor(publishedCsv, `${PREFIX}${w}`, REPORTED_LOADS),
      });
      progress(`${w}: ${seeds.length} seed(s) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
  }),
);
const wallSeconds = (performance.now() - started) / 1000;
const section = packingSection({
  strategy: DEFAULT_STRATEGY,
  seeds,
  results: workloads.map((w) => results.get(w)!),
  cpuSeconds,
  wallSeconds,
  jobs,
  date: new Date().toISOString().slice(0, 10),
});
if (values.print) console.log(section);
else {
  writeFileSync(values.readme, replaceBetweenMarkers(readFileSync(values.readme, 'utf8'), 'packing', section));
  progress(
    `${values.readme}: packing table rewritten (${workloads.length} workloads, ${(wallSeconds / 60).toFixed(1)} min)`,
  );
}
