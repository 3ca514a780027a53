import t from 'tap';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const read = (path: string): unknown =>
  parse(readFileSync(new URL(`../../../manifests/${path}`, import.meta.url), 'utf8'));

t.test('the PrometheusRule in the kustomize base holds exactly the plain rules file', async (t) => {
  const file = read('monitoring/tessera.rules.yml') as { groups: unknown[] };
  const rule = read('base/prometheus-rule.yaml') as { kind: string; spec: { groups: unknown[] } };
  t.equal(rule.kind, 'PrometheusRule');
  t.same(rule.spec.groups, file.groups, 'edit both files together');
});

t.test('the rules and the dashboard select per-pod series as `tessera usage --prometheus` does', async (t) => {
  const { heldBy } = await import('../../../core/chargeback/prometheus-query.ts');
  const file = read('monitoring/tessera.rules.yml') as { groups: { rules: { record?: string; expr: string }[] }[] };
  const held = file.groups[0]!.rules.find((r) => r.record === 'tenant_namespace_pool:tessera_gpu_equivalents:sum');
  t.equal(held?.expr, heldBy(['tenant', 'namespace', 'pool']));
  t.ok(dashboardQueries().includes(heldBy(['pool'])), 'GPU-equivalents per pool on the dashboard');
});

/** Every PromQL expression of the Grafana dashboard. */
export function dashboardQueries(): string[] {
  const dashboard = JSON.parse(
    readFileSync(new URL('../../../manifests/monitoring/grafana-dashboard.json', import.meta.url), 'utf8'),
  ) as { panels: { title: string; targets?: { expr: string }[] }[] };
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr));
}

t.test('every metric the dashboard names exists in the servers’ /metrics or the recording rules', async (t) => {
  const { WebhookMetrics } = await import('../../../webhook/metrics.ts');
  const { ExtenderMetrics } = await import('../../../extender/metrics.ts');
  const exposed = new Set<string>();
  for (const registry of [new WebhookMetrics().registry, new ExtenderMetrics().registry]) {
    for (const m of await registry.getMetricsAsJSON()) {
      exposed.add(m.name);
      if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exposed.add(m.name + s);
    }
  }
  const rules = read('monitoring/tessera.rules.yml') as { groups: { rules: { record?: string }[] }[] };
  for (const g of rules.groups) for (const r of g.rules) if (r.record) exposed.add(r.record);
  const queries = dashboardQueries();
  t.ok(queries.length >= 10, `${queries.length} queries`);
  for (const q of queries) {
    const names = [...q.matchAll(/\b(?:[a-z_]+:)?tessera_[a-z_]+(?::[a-z0-9]+)?\b/g)].map((m) => m[0]);
    t.ok(names.length > 0, `names a Tessera metric: ${q}`);
    for (const name of names) t.ok(exposed.has(name), `${name} is exposed (${q})`);
  }
});
