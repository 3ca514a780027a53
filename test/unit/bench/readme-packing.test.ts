// The README's packing table is generated from simulator runs (npm run readme:packing), so that it cannot go stale:
// the section builder and the marker rewrite, and the script end to end on a tiny trace.

import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packingSection, replaceBetweenMarkers, seedText, workloadOrder } from '../../bench/packing-table.ts';
import { runCli } from '../../fixtures/cli.ts';

const SCRIPT = new URL('../../bench/readme-packing.ts', import.meta.url).pathname;

const published = (policy: string, mean: number, sd = 0.1) => ({
  policy,
  seeds: 10,
  mean: { '100': mean },
  sd: { '100': sd },
});

t.test('the section states what was run and computes the summary from the figures', async (t) => {
  const section = packingSection({
    strategy: 'tessera',
    seeds: [42, 43, 44],
    results: [
      {
        workload: 'default',
        tessera: [4.1, 4.2, 4.3],
        published: [published('06-FGD', 4.77), published('01-Random', 13.7)],
      },
      { workload: 'gpuspec25', tessera: [9.3, 9.4, 9.6], published: [published('06-FGD', 6.09, 0.3)] },
    ],
    cpuSeconds: 600,
    wallSeconds: 330,
    jobs: 2,
    date: '2026-01-02',
  });
  t.match(section, /mean ± sd over seeds 42-44 \(3 seeds\)/);
  t.match(
    section,
    /Generated\s+by `npm run readme:packing` on 2026-01-02: 6 runs, 10.0 min of CPU, 5.5 min\s+wall-clock/,
  );
  t.match(section, /\| default +\| \*\*4\.20 ± 0\.10\*\* +\| 4\.77 +\| - +\| - +\| - +\| - +\| 13\.70 +\| -0\.57 +\|/);
  t.match(
    section,
    /\| gpuspec25 +\| 9\.43 ± 0\.15 +\| \*\*6\.09\*\* +\|.*\| \+3\.34 +\|/,
    'the best of the row is bold, not Tessera',
  );
  t.match(section, /below FGD's on 1 of the 2 workloads, and not on 1: gpuspec25 \(\+3\.34, FGD's sd 0\.30\)\./);
  t.ok(
    section.split('\n').every((l) => l.length <= 120 || l.startsWith('|')),
    'prose wrapped at 120 columns',
  );
  t.equal(seedText([42, 43, 44]), '42-44');
  t.same(
    ['gpuspec25', 'cpu250', 'multigpu20', 'default', 'gpushare100', 'cpu050', 'gpushare40', 'gpuspec10'].sort(
      workloadOrder,
    ),
    ['default', 'cpu050', 'cpu250', 'gpushare40', 'gpushare100', 'multigpu20', 'gpuspec10', 'gpuspec25'],
    'rows: default first, then each family by number',
  );
  t.equal(seedText([42, 45]), '42,45');
});

t.test('only the text between the markers is replaced', async (t) => {
  const text = 'before\n<!-- packing -->\nold table\n<!-- /packing -->\nafter\n';
  t.equal(replaceBetweenMarkers(text, 'packing', 'new'), 'before\n<!-- packing -->\nnew\n<!-- /packing -->\nafter\n');
  t.throws(
    () => replaceBetweenMarkers('no markers', 'packing', 'x'),
    /markers <!-- packing --> \.\.\. <!-- \/packing --> are missing/,
  );
});

t.test('npm run readme:packing rewrites the README from simulator runs (a tiny trace)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-readme-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'openb_node_list_gpu_node.csv'),
    'sn,cpu_milli,memory_mib,gpu,model\nn0,32000,131072,2,T4\nn1,96000,393216,8,G2\n',
  );
  writeFileSync(
    join(dir, 'openb_pod_list_tiny.csv'),
    'name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\np0,4000,8192,1,500,\np1,2000,4096,1,250,T4\np2,8000,16384,2,1000,\n',
  );
  mkdirSync(join(dir, 'fgd-expected-results'));
  const loads = Array.from({ length: 131 }, (_, i) => i);
  const row = (policy: string, seed: number, allocated: number) =>
    ['openb_pod_list_tiny', policy, '1.3', seed, 10, ...loads.map(() => allocated)].join(',');
  writeFileSync(
    join(dir, 'fgd-expected-results', 'analysis_allo_discrete.csv'),
    [
      ['workload', 'sc_policy', 'tune', 'seed', 'total_gpus', ...loads].join(','),
      row('06-FGD', 42, 90),
      row('06-FGD', 43, 92),
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'README.md'), '# x\n\n<!-- packing -->\nstale\n<!-- /packing -->\n\ntail\n');
  const r = await runCli(['--data', dir, '--readme', join(dir, 'README.md'), '--seeds', '42-43', '--jobs', '1'], {
    command: [process.execPath, SCRIPT],
    timeoutMs: 120_000,
  });
  t.equal(r.code, 0, r.stderr);
  const readme = readFileSync(join(dir, 'README.md'), 'utf8');
  t.notMatch(readme, /stale/);
  t.match(readme, /^# x\n\n<!-- packing -->\nUnallocated GPU %/);
  t.match(readme, /\| tiny +\| (\*\*)?[\d.]+ ± [\d.]+(\*\*)? +\| (\*\*)?9\.00(\*\*)? +\|/, 'FGD mean: 100 - 91 = 9.00');
  t.match(readme, /published runs \(2 seeds each\)/);
  t.match(readme, /<!-- \/packing -->\n\ntail\n$/);
});
