// The soak's chargeback parts that need no cluster: the comparison of the two usage reports, how failed scrapes are
// explained, Prometheus's configuration, and the plot. The soak runs them against a real Prometheus (soak:short).

import t from 'tap';
import { parse } from 'yaml';
import type { UsageReport } from '../../../core/chargeback/gpu-hours.ts';
import { prometheusConfigYaml } from '../../prometheus/server.ts';
import { renderChargebackSvg, tickStep } from '../../soak/chargeback-plot.ts';
import { usageKey } from '../../../core/chargeback/gpu-hours.ts';
import type { ClusterSnapshot } from '../../../core/invariants/cluster-snapshot.ts';
import { examplePolicy, NAMESPACES } from '../../fixtures/admission.ts';
import { pod } from '../../fixtures/pods.ts';
import { compareUsage, scrapeFindings, SnapshotGaps, TOLERANCE } from '../../soak/chargeback.ts';

const report = (rows: [string, string, string, number][]): UsageReport => ({
  from: '2026-11-27T09:00:00.000Z',
  to: '2026-11-27T10:00:00.000Z',
  rows: rows.map(([tenant, namespace, pool, gpuHours]) => ({ tenant, namespace, pool, gpuHours })),
});

t.test('usage reports are compared per row and in total: 2 % relative, absolutely under the floor', async (t) => {
  t.same(TOLERANCE, { relative: 0.02, floorGpuHours: 0.1 });
  const snapshots = report([
    ['research', 'vision', 'shared-h100', 1.0],
    ['research', 'nlp', 'a100-mig', 0.05],
    ['genomics', 'genomics', 'l4-timesliced', 0.0015],
  ]);
  const prometheus = report([
    ['research', 'vision', 'shared-h100', 1.019],
    ['research', 'nlp', 'a100-mig', 0.0515],
    ['payments-ml', 'risk', 'sovereign-eu', 0.0015],
  ]);
  const c = compareUsage(snapshots, prometheus);
  const row = (ns: string) => c.rows.find((r) => r.namespace === ns)!;
  t.equal(c.rows.length, 4, 'a row in either report is compared (missing on one side counts 0)');
  t.ok(row('vision').ok, '1.9 % of a large row');
  t.equal(row('vision').allowed, 0.02 * 1.019);
  t.ok(row('nlp').ok, '3 % of a row under 0.1 GPU-h is 0.0015 GPU-h, within 0.002');
  t.equal(row('nlp').allowed, 0.002);
  t.ok(row('genomics').ok && row('risk').ok, 'rows on one side only, within 0.002 GPU-h');
  t.ok(c.total.ok);
  t.equal(Math.round(c.total.snapshots * 1e6) / 1e6, 1.0515);
  t.equal(c.worst?.namespace, 'vision', 'the row nearest its tolerance');

  const off = compareUsage(snapshots, report([['research', 'vision', 'shared-h100', 1.03]]));
  t.notOk(off.rows.find((r) => r.namespace === 'vision')!.ok, '3 % of a large row');
  t.notOk(off.rows.find((r) => r.namespace === 'nlp')!.ok, 'a row of 0.05 GPU-h missing altogether');
  t.equal(off.worst?.namespace, 'nlp');
  t.same(compareUsage(report([]), report([])).worst, null);

  const gaps = new Map([[usageKey('research', 'nlp', 'a100-mig'), 0.003]]);
  const loose = compareUsage(snapshots, report([['research', 'vision', 'shared-h100', 1.0]]), TOLERANCE, gaps);
  const nlp = loose.rows.find((r) => r.namespace === 'nlp')!;
  t.equal(nlp.gapAllowance, 0.003);
  t.equal(nlp.allowed, 0.005, 'the floor, and what the snapshots could not see');
  t.notOk(nlp.ok, 'a row of 0.05 GPU-h missing is still too much');
  t.equal(loose.total.gapAllowance, 0.003);
});

t.test('a snapshot gap widens the rows of the pods that changed across it, by the change times the gap', async (t) => {
  const policy = examplePolicy();
  const running = (name: string, milli: number) =>
    pod(name).ns('research-a').gpuMilli(milli).annotate('tessera.io/pool', 'shared-h100').boundTo('h').build();
  const at = (s: number, pods: ReturnType<typeof running>[]): ClusterSnapshot => ({
    time: new Date(Date.UTC(2026, 10, 27, 9, 0, s)).toISOString(),
    nodes: [],
    pods,
    namespaces: NAMESPACES,
  });
  const stays = running('stays', 500);
  const ends = running('ends', 250);
  const starts = running('starts', 1000);
  const gaps = new SnapshotGaps(1_000, () => policy);
  gaps.add(at(0, [stays, ends]));
  gaps.add(at(1, [stays, ends]));
  gaps.add(at(2, [stays]));
  t.same(gaps.gaps, [], 'the ordinary cadence is what the tolerance is for');
  gaps.add(at(9, [stays, starts]));
  t.same(gaps.gaps, [7_000]);
  const key = usageKey('research', 'research-a', 'shared-h100');
  t.equal(gaps.allowance.get(key), (1 * 6) / 3600, 'one GPU started during the 7 s, 6 s beyond the cadence');
  t.equal(gaps.allowance.size, 1);
});

t.test('a failed scrape is explained only while its replica was down', async (t) => {
  const killed = Date.parse('2026-11-27T09:00:10Z');
  const up = [
    {
      metric: { replica: 'extender-a', job: 'tessera-extender' },
      values: [9, 10, 11, 20, 40, 70].map((s): [number, string] => [
        (Date.parse('2026-11-27T09:00:00Z') + s * 1000) / 1000,
        s === 9 || s === 70 ? '1' : '0',
      ]),
    },
    {
      metric: { replica: 'webhook-a', job: 'tessera-webhook' },
      values: [[(killed + 5_000) / 1000, '0'] as [number, string]],
    },
  ];
  const outages = new Map([['extender-a', [{ from: killed, to: killed + 8_000 }]]]);
  const errors = [
    { time: killed + 5_000, replica: 'webhook-a', error: 'x509: certificate signed by unknown authority' },
  ];
  const r = scrapeFindings(up, outages, errors, 10_000);
  t.same(r.perReplica, [
    { replica: 'extender-a', scrapes: 6, failed: 4, whileDown: 3 },
    { replica: 'webhook-a', scrapes: 1, failed: 1, whileDown: 0 },
  ]);
  t.equal(r.unexplained.length, 2);
  t.match(
    r.unexplained[0],
    /^extender-a at 2026-11-27T09:00:40.000Z$/,
    '22 s after it was back, past the 10 s of grace',
  );
  t.match(r.unexplained[1], /webhook-a .*x509/, 'with the error Prometheus gave');
  t.same(r.certificate, ['webhook-a at 2026-11-27T09:00:15.000Z: x509: certificate signed by unknown authority']);
});

t.test('Prometheus scrapes each job with its scheme, the webhooks verified with the CA file', async (t) => {
  const config = parse(
    prometheusConfigYaml({
      scrapeIntervalSeconds: 1,
      ruleFiles: ['/x/tessera.rules.yml'],
      jobs: [
        { name: 'tessera-extender', scheme: 'http', targets: [{ address: '127.0.0.1:1', labels: { replica: 'e' } }] },
        { name: 'tessera-webhook', scheme: 'https', targets: [{ address: '127.0.0.1:2' }], caFile: '/certs/ca.crt' },
      ],
    }),
  );
  t.same(config.global, { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' });
  t.same(config.rule_files, ['/x/tessera.rules.yml']);
  t.same(config.scrape_configs[0].static_configs, [{ targets: ['127.0.0.1:1'], labels: { replica: 'e' } }]);
  t.equal(config.scrape_configs[0].tls_config, undefined);
  t.same(config.scrape_configs[1].tls_config, { ca_file: '/certs/ca.crt' }, 'verified, never insecure_skip_verify');
  t.equal(config.scrape_configs[1].scheme, 'https');
});

t.test('the plot: nice ticks, every tenant and fault drawn, text escaped', async (t) => {
  t.equal(tickStep(10, 4), 5);
  t.equal(tickStep(2, 8), 0.5);
  t.equal(tickStep(0, 4), 1);
  const from = Date.parse('2026-11-27T09:00:00Z');
  const svg = renderChargebackSvg({
    title: 'GPUs <&> tenants',
    from,
    to: from + 120_000,
    tenants: [
      {
        tenant: 'research',
        points: [
          [from, 1],
          [from + 60_000, 2.5],
          [from + 120_000, 0],
        ],
        quota: 12,
        gpuHours: 0.05,
      },
      { tenant: 'genomics', points: [[from, 0.25]], quota: null, gpuHours: 0.0083 },
    ],
    faults: [
      { time: from + 30_000, kind: 'extender-leader-kill' },
      { time: from + 31_000, kind: 'cert-rotation' },
      { time: from + 500_000, kind: 'kwok-restart' },
    ],
  });
  t.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.match(svg, /<\/svg>\n$/);
  t.match(svg, /^<svg [^>]*>\n<title>GPUs &lt;&amp;&gt; tenants<\/title>/, 'a title first, for screen readers');
  t.notMatch(svg, /NaN|undefined|Infinity/);
  t.match(svg, /research<\/text>/);
  t.match(svg, /genomics<\/text>/);
  t.match(svg, /0\.050 GPU-h, quota 12/);
  t.match(svg, /quota 12<\/text>/);
  t.match(svg, /leader killed/);
  t.match(svg, /cert rotation/);
  t.notMatch(svg, /kwok restart/, 'a fault outside the window is not drawn');
  t.equal(svg.match(/<path /g)?.length, 4, 'one stacked area and one panel per tenant');
});
