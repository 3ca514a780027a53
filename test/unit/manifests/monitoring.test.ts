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
