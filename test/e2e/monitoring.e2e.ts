// The chargeback rules and the dashboard against the real promtool (built from the Prometheus Go module): the rules
// file is valid, its unit tests pass, and every query of the Grafana dashboard parses.

import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { ensurePrometheus } from '../prometheus/build.ts';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

function promtool(args: string[]): { ok: boolean; out: string } {
  const { promtool } = ensurePrometheus();
  try {
    return { ok: true, out: execFileSync(promtool, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return { ok: false, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

t.test('promtool: the chargeback rules are valid and pass their unit tests', async (t) => {
  const check = promtool(['check', 'rules', here('../../manifests/monitoring/tessera.rules.yml')]);
  t.ok(check.ok, check.out);
  const unit = promtool(['test', 'rules', here('../prometheus/tessera.rules.test.yml')]);
  t.ok(unit.ok, unit.out);
  t.match(unit.out, /SUCCESS/);
});

t.test('promtool: every query of the Grafana dashboard parses', async (t) => {
  const dashboard = JSON.parse(readFileSync(here('../../manifests/monitoring/grafana-dashboard.json'), 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => ({ panel: p.title, expr: x.expr })));
  // promtool parses recording rules strictly: one rule per query is a parse check of all of them.
  const dir = mkdtempSync(join(tmpdir(), 'tessera-dashboard-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'dashboard.rules.yml');
  writeFileSync(
    file,
    stringify({
      groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:query:${i}`, expr: e.expr })) }],
    }),
  );
  const check = promtool(['check', 'rules', file]);
  t.ok(check.ok, check.out);
  t.match(check.out, new RegExp(`SUCCESS: ${exprs.length} rules found`));
  // A broken query must fail the same check (the check is not vacuous).
  writeFileSync(
    file,
    stringify({ groups: [{ name: 'dashboard', rules: [{ record: 'dashboard:broken', expr: 'sum by (' }] }] }),
  );
  t.notOk(promtool(['check', 'rules', file]).ok, 'a query that does not parse fails');
});

t.test('promtool: the usage query counts a pod once across a leader change and stops at its staleness marker', async (t) => {
  const { gpuHoursQuery } = await import('../../core/chargeback/prometheus-query.ts');
  const dir = mkdtempSync(join(tmpdir(), 'tessera-usage-query-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const series = (instance: string, pod: Record<string, string>) =>
    `tessera_pod_gpu_equivalents{${Object.entries({ instance, job: 'tessera-extender', replica: instance, ...pod })
      .map(([k, v]) => `${k}="${v}"`)
      .join(',')}}`;
  const nb = { namespace: 'vision', pod: 'nb-0', tenant: 'research', pool: 'shared-h100', node: 'h100-0', gpu: '0' };
  const mig = { namespace: 'risk', pod: 'score-0', tenant: 'payments-ml', pool: 'a100-mig', node: 'a100-0', gpu: '' };
  // Samples every 10 s. nb-0 holds half a GPU from 0 to 20 min: the first replica exports it until it is killed at
  // 10 min (its series go stale at the failed scrape); the second exports it from 5 min (while both run, it counts
  // once) until the pod ends (stale at 20 min). score-0 holds 3/7 on the first replica only, until it ends at 10 min.
  writeFileSync(
    join(dir, 'usage.test.yml'),
    stringify({
      evaluation_interval: '10s',
      fuzzy_compare: true,
      tests: [
        {
          interval: '10s',
          input_series: [
            { series: series('extender-a', nb), values: '0.5x60 stale' },
            { series: series('extender-b', nb), values: '_x30 0.5x89 stale' },
            { series: series('extender-a', mig), values: '0.42857142857142855x60 stale' },
          ],
          promql_expr_test: [
            {
              expr: gpuHoursQuery(1800, 10),
              eval_time: '30m',
              // Steps 10 s .. 30 min: nb-0 at 10 s .. 19 min 50 s (119 steps), score-0 at 10 s .. 10 min (60 steps).
              exp_samples: [
                { labels: '{tenant="research",namespace="vision",pool="shared-h100"}', value: (119 * 0.5 * 10) / 3600 },
                { labels: '{tenant="payments-ml",namespace="risk",pool="a100-mig"}', value: (60 * (3 / 7) * 10) / 3600 },
              ],
            },
          ],
        },
      ],
    }),
  );
  const run = promtool(['test', 'rules', join(dir, 'usage.test.yml')]);
  t.ok(run.ok, run.out);
  t.match(run.out, /SUCCESS/);
});
