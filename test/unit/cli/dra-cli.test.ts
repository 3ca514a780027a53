import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditCommand } from '../../../cli/audit.ts';
import { policyCommand } from '../../../cli/policy.ts';
import { explainCommand } from '../../../cli/explain.ts';
import { claim, claimTemplate, exactly, gpuDevice, nodeSlice, NVIDIA_CLASSES } from '../../fixtures/dra.ts';

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

t.test('explain reports DRA pools, devices and the claims that hold them, per node', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-dra-explain-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const draNode = (name: string) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'tessera.io/pool': 'dra-h100' } },
    status: { allocatable: { cpu: '64', memory: '512Gi', pods: '110' } },
  });
  const held = {
    ...claim('train-gpu', 'vision', [exactly('gpu', 'gpu.nvidia.com', { count: 2 })]),
    status: {
      allocation: {
        devices: {
          results: ['gpu-0', 'gpu-1'].map((device) => ({
            request: 'gpu',
            driver: 'gpu.nvidia.com',
            pool: 'dra-0',
            device,
          })),
        },
      },
      reservedFor: [{ resource: 'pods', name: 'train', uid: 'uid-train' }],
    },
  };
  const running = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'train', namespace: 'vision', uid: 'uid-train', annotations: { 'tessera.io/pool': 'dra-h100' } },
    spec: {
      nodeName: 'dra-0',
      resourceClaims: [{ name: 'gpu', resourceClaimName: 'train-gpu' }],
      containers: [{ name: 'main', image: 'registry.example/train:1', resources: { claims: [{ name: 'gpu' }] } }],
    },
    status: { phase: 'Running' },
  };
  const snapshot = {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } },
      },
      draNode('dra-0'),
      draNode('dra-1'),
      ...NVIDIA_CLASSES.map((c) => ({ ...c, kind: 'DeviceClass' })),
      nodeSlice(
        'dra-0',
        [0, 1, 2, 3].map((i) => gpuDevice('dra-0', i)),
      ),
      nodeSlice(
        'dra-1',
        [0, 1].map((i) => gpuDevice('dra-1', i)),
      ),
      { ...held, kind: 'ResourceClaim' },
      {
        ...claimTemplate('two', 'vision', [exactly('gpu', 'gpu.nvidia.com', { count: 2 })]),
        kind: 'ResourceClaimTemplate',
      },
      running,
    ],
  };
  const pending = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'next', namespace: 'vision', annotations: { 'tessera.io/pool': 'dra-h100' } },
    spec: {
      resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: 'two' }],
      containers: [{ name: 'main', image: 'registry.example/train:1', resources: { claims: [{ name: 'gpu' }] } }],
    },
  };
  writeFileSync(join(dir, 'snapshot.json'), JSON.stringify(snapshot));
  writeFileSync(join(dir, 'pod.json'), JSON.stringify(pending));
  const args = ['--snapshot', join(dir, 'snapshot.json'), '--pod', join(dir, 'pod.json'), '--policy', DRA_POLICY];
  const text = await capture(() => explainCommand(args));
  t.equal(text.code, 0);
  t.match(text.out, /DRA \(ResourceSlices, and the allocated ResourceClaims that hold devices\):/);
  t.match(text.out, /dra-0 {2}pool dra-h100; gpu\.nvidia\.com\/dra-0: 4 device\(s\) \(H100-80GB-HBM3\), 2 free/);
  t.match(text.out, /claim vision\/train-gpu holds gpu-0, gpu-1 for train/);
  t.match(text.out, /dra-1 {2}pool dra-h100; gpu\.nvidia\.com\/dra-1: 2 device\(s\) \(H100-80GB-HBM3\), 2 free/);
  const json = await capture(() => explainCommand([...args, '--json']));
  const report = JSON.parse(json.out) as { dra: { node: string; free: number; claims: { claim: string }[] }[] };
  t.same(
    report.dra.map((d) => [d.node, d.free, d.claims.map((c) => c.claim)]),
    [
      ['dra-0', 2, ['vision/train-gpu']],
      ['dra-1', 2, []],
    ],
  );
});
