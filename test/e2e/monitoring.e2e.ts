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
