import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatUsage, parseTime, readSnapshotDir, usageFromPrometheus } from '../../../cli/usage.ts';
import { EXAMPLE_POLICY_TEXT, NAMESPACES } from '../../fixtures/admission.ts';
import { pod } from '../../fixtures/pods.ts';

t.test('times: RFC 3339, now, and now minus a duration; anything else is refused', async (t) => {
  const now = new Date('2026-11-27T10:00:00Z');
  t.equal(parseTime('-90m', now).toISOString(), '2026-11-27T08:30:00.000Z');
  t.equal(parseTime('2026-11-27T09:00:00Z', now).toISOString(), '2026-11-27T09:00:00.000Z');
  t.equal(parseTime('now', now), now);
  t.throws(() => parseTime('yesterday', now), /not a time/);
});

t.test('snapshots from a soak directory, with its policy; table and CSV', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-usage-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'policy'));
  writeFileSync(join(dir, 'policy', 'policy.yaml'), EXAMPLE_POLICY_TEXT);
  const running = pod('nb')
    .ns('research-a')
    .gpuMilli(250)
    .annotate('tessera.io/pool', 'shared-h100')
    .boundTo('h')
    .build();
  for (const [i, minute] of [0, 30, 60].entries()) {
    const time = new Date(Date.UTC(2026, 10, 27, 9, minute)).toISOString();
    writeFileSync(
      join(dir, `snapshot-000${i}.json`),
      JSON.stringify({ time, nodes: [], pods: [running], namespaces: NAMESPACES }),
    );
  }
  const snapshots = readSnapshotDir(dir);
  t.equal(snapshots.length, 3);
  const { gpuHoursFromSnapshots } = await import('../../../core/chargeback/gpu-hours.ts');
  const { loadPolicy } = await import('../../../cli/policy-files.ts');
  const report = gpuHoursFromSnapshots(
    snapshots,
    loadPolicy([join(dir, 'policy')]),
    new Date(snapshots[0]!.time),
    new Date(snapshots[2]!.time),
  );
  t.match(formatUsage(report, 'table'), /research\s+research-a\s+shared-h100\s+0\.250/);
  t.equal(formatUsage(report, 'csv'), 'tenant,namespace,pool,gpu_hours\nresearch,research-a,shared-h100,0.25');
  writeFileSync(join(dir, 'snapshot-0009.json'), '{"nodes": []}');
  t.throws(() => readSnapshotDir(dir), /snapshot-0009.json: snapshot field "pods" must be an array/);
});

t.test('Prometheus over HTTP: the instant query at the window end, errors said plainly', async (t) => {
  let asked: URL | null = null;
  const server = createServer((req, res) => {
    asked = new URL(req.url ?? '', 'http://x');
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        status: 'success',
        data: {
          resultType: 'vector',
          result: [{ metric: { tenant: 'research', namespace: 'vision', pool: 'shared-h100' }, value: [0, '2.5'] }],
        },
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const from = new Date('2026-11-27T09:00:00Z');
  const to = new Date('2026-11-27T10:00:00Z');
  const report = await usageFromPrometheus(url, from, to, 15);
  t.same(report.rows, [{ tenant: 'research', namespace: 'vision', pool: 'shared-h100', gpuHours: 2.5 }]);
  t.equal(asked!.pathname, '/api/v1/query');
  t.equal(asked!.searchParams.get('time'), String(to.getTime() / 1000));
  t.match(asked!.searchParams.get('query'), /\[3600s:15s\]/);
  await t.rejects(
    usageFromPrometheus('http://127.0.0.1:1', from, to, 15),
    /cannot reach Prometheus at http:\/\/127.0.0.1:1/,
  );
});
