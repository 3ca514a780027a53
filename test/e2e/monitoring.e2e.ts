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

t.test('promtool: the usage query follows the leader, across a failover, and stops at staleness markers', async (t) => {
  const { gpuHoursQuery } = await import('../../core/chargeback/prometheus-query.ts');
  const dir = mkdtempSync(join(tmpdir(), 'tessera-usage-query-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const labels = (replica: string, more: Record<string, string> = {}) =>
    `{${Object.entries({
      instance: `127.0.0.1:${replica === 'extender-a' ? 1 : 2}`,
      job: 'tessera-extender',
      replica,
      ...more,
    })
      .map(([k, v]) => `${k}="${v}"`)
      .join(',')}}`;
  const held = (replica: string, pod: Record<string, string>) => `tessera_pod_gpu_equivalents${labels(replica, pod)}`;
  const nb = { namespace: 'vision', pod: 'nb-0', tenant: 'research', pool: 'shared-h100', node: 'h100-0', gpu: '0' };
  const ft = { namespace: 'nlp', pod: 'ft-0', tenant: 'research', pool: 'shared-h100', node: 'h100-1', gpu: '1' };
  const mig = { namespace: 'risk', pod: 'score-0', tenant: 'payments-ml', pool: 'a100-mig', node: 'a100-0', gpu: '' };
  // Samples every 10 s, both replicas exporting what they see. extender-a leads until it is killed at 10 min (its
  // series go stale at the failed scrape); extender-b, the standby since 5 min, takes the Lease at 12 min.
  // - nb-0 holds half a GPU from 0 to 20 min: from the leader, from extender-b during the two minutes without one.
  // - ft-0 holds a GPU from 1 to 3 min by the leader; the standby's scrapes see it 10 s earlier and 10 s later.
  // - score-0 holds 3/7 on extender-a only, until it ends at 10 min.
  writeFileSync(
    join(dir, 'usage.test.yml'),
    stringify({
      evaluation_interval: '10s',
      fuzzy_compare: true,
      tests: [
        {
          interval: '10s',
          input_series: [
            { series: `tessera_extender_leader${labels('extender-a')}`, values: '1x60 stale' },
            { series: `tessera_extender_leader${labels('extender-b')}`, values: '_x30 0x41 1x107' },
            { series: held('extender-a', nb), values: '0.5x60 stale' },
            { series: held('extender-b', nb), values: '_x30 0.5x89 stale' },
            { series: held('extender-a', ft), values: '_x6 1x12 stale' },
            { series: held('extender-b', ft), values: '_x5 1x14 stale' },
            { series: held('extender-a', mig), values: '0.42857142857142855x60 stale' },
          ],
          promql_expr_test: [
            {
              expr: gpuHoursQuery(1800, 10),
              eval_time: '30m',
              // Steps 10 s .. 30 min: nb-0 at 10 s .. 19 min 50 s (119 steps), ft-0 at 1 .. 3 min by the leader (13),
              // score-0 at 10 s .. 10 min (60). Taking the largest across replicas would give ft-0 15 steps.
              exp_samples: [
                { labels: '{tenant="research",namespace="vision",pool="shared-h100"}', value: (119 * 0.5 * 10) / 3600 },
                { labels: '{tenant="research",namespace="nlp",pool="shared-h100"}', value: (13 * 10) / 3600 },
                {
                  labels: '{tenant="payments-ml",namespace="risk",pool="a100-mig"}',
                  value: (60 * (3 / 7) * 10) / 3600,
                },
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

t.test('a Prometheus that cannot start fails loudly, with its log', async (t) => {
  const { startPrometheus } = await import('../prometheus/server.ts');
  const dir = mkdtempSync(join(tmpdir(), 'tessera-prometheus-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'broken.rules.yml'),
    'groups:\n  - name: x\n    rules:\n      - record: a:b\n        expr: sum by (\n',
  );
  await t.rejects(
    startPrometheus({
      dir,
      logDir: dir,
      config: { scrapeIntervalSeconds: 1, ruleFiles: [join(dir, 'broken.rules.yml')], jobs: [] },
      timeoutMs: 30_000,
    }),
    /Prometheus exited[\s\S]*broken\.rules\.yml/,
  );
});
