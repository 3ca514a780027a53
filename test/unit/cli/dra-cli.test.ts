import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditCommand } from '../../../cli/audit.ts';
import { policyCommand } from '../../../cli/policy.ts';
import { claimTemplate, exactly, NVIDIA_CLASSES } from '../../fixtures/dra.ts';

const DRA_POLICY = new URL('../../../../shared/examples/dra/policy.yaml', import.meta.url).pathname;
const SUITE = new URL('../../policy/dra', import.meta.url).pathname;

async function capture(run: () => number | Promise<number>): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(' '));
  try {
    return { code: await run(), out: lines.join('\n') };
  } finally {
    console.log = original;
  }
}

t.test('policy lint is clean on the DRA example and shows the pool classes', async (t) => {
  const r = await capture(() => policyCommand(['lint', DRA_POLICY]));
  t.equal(r.code, 0);
  t.match(r.out, /dra-h100 \(dra, H100-SXM5-80GB, classes gpu.nvidia.com mig.nvidia.com\)/);
});

t.test('policy test runs the DRA suite with DeviceClasses and claim templates in its context', async (t) => {
  const r = await capture(() => policyCommand(['test', SUITE]));
  t.match(r.out, /10 passed, 0 failed/);
  t.equal(r.code, 0);
});

t.test('audit resolves running pods claims from the snapshot', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-dra-audit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const running = (name: string, namespace: string) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace,
      annotations: { 'tessera.io/pool': 'dra-h100' },
      labels: { team: 'x', 'cost-center': '1234' },
    },
    spec: {
      nodeName: 'dra-0',
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: 'tessera.io/pool', operator: 'In', values: ['dra-h100'] }] },
            ],
          },
        },
      },
      schedulerName: 'tessera-scheduler',
      runtimeClassName: 'nvidia',
      resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: 'one-gpu' }],
      containers: [{ name: 'c', image: 'registry.eu.acme.example/x:1', resources: { claims: [{ name: 'gpu' }] } }],
    },
    status: { phase: 'Running' },
  });
  const snapshot = {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } },
      },
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'risk', labels: { 'tessera.io/tenant': 'payments-ml' } },
      },
      ...NVIDIA_CLASSES,
      claimTemplate('one-gpu', 'vision', [exactly('gpu', 'gpu.nvidia.com')]),
      claimTemplate('one-gpu', 'risk', [exactly('gpu', 'gpu.nvidia.com')]),
      running('ok', 'vision'),
      running('drifted', 'risk'),
    ],
  };
  writeFileSync(join(dir, 'snap.json'), JSON.stringify(snapshot));
  const r = await capture(() => auditCommand(['--policy', DRA_POLICY, '--snapshot', join(dir, 'snap.json'), '--json']));
  const report = JSON.parse(r.out);
  t.same(
    report.drifted.map((d: { name: string }) => d.name),
    ['drifted'],
  );
  const messages = report.drifted[0].violations.map((v: { message: string }) => v.message).join('\n');
  t.match(messages, /tessera.io\/pool=dra-h100 is not a pool of tenant payments-ml/);
  t.match(messages, /DeviceClass gpu.nvidia.com, a GPU class that no pool of tenant payments-ml lists/);
});
