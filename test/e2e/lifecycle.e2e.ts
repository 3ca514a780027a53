// A living cluster: KWOK runs the fake GPU nodes of the stack and moves their pods through their lifecycle by the
// Stages in test/kwok/stages/, driven by the kwok.tessera.io/* pod annotations. Nothing here writes a status by hand.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { BatchV1Api, CoordinationV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { lifecycleAnnotations } from '../kwok/kwok.ts';
import { createFakeNode, startStack, type Stack } from './stack.ts';
import { until } from '../fixtures/waiting.ts';

const POLICY = readFileSync(new URL('../../../shared/examples/policy.yaml', import.meta.url), 'utf8');

const LABELS = { team: 'vision', 'cost-center': '1234' };

function gpuPod(name: string, annotations: Record<string, string>): V1Pod {
  return {
    metadata: { name, labels: LABELS, annotations: { 'tessera.io/gpu-fraction': '0.25', ...annotations } },
    spec: {
      restartPolicy: 'Never',
      containers: [
        { name: 'main', image: 'registry.example/train:1', resources: { requests: { cpu: '1', memory: '1Gi' } } },
      ],
    },
  };
}

t.test('KWOK runs the fake GPU nodes and their pods live', async (t) => {
  // A short Lease so that a restarted KWOK takes the node over within seconds.
  const stack: Stack = await startStack({
    policy: POLICY,
    progress: (l) => t.comment(l),
    kwok: { leaseDurationSeconds: 5 },
  });
  t.teardown(() => stack.stop());
  const admin = stack.client('admin').makeApiClient(CoreV1Api);
  const batch = stack.client('admin').makeApiClient(BatchV1Api);
  const leases = stack.client('admin').makeApiClient(CoordinationV1Api);
  const gfd = {
    'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3',
    'nvidia.com/gpu.count': '8',
    'nvidia.com/gpu.memory': '81559',
    'nvidia.com/gpu.sharing-strategy': 'none',
  };
  await createFakeNode(
    admin,
    {
      metadata: {
        name: 'h100-0',
        labels: { ...gfd, 'tessera.io/pool': 'shared-h100', 'tessera.io/sharing': 'fraction' },
      },
      spec: { taints: [{ key: 'tessera.io/pool', value: 'shared-h100', effect: 'NoSchedule' }] },
    },
    { cpu: '96', memory: '1Ti', pods: '110' },
  );
  await stack
    .client('alice@acme.example')
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } } });
  await admin.createNamespacedServiceAccount({ namespace: 'vision', body: { metadata: { name: 'default' } } });
  // Looked at again at the end: KWOK must never have posted it Ready.
  await admin.createNode({ body: { metadata: { name: 'not-kwok' }, status: { allocatable: { cpu: '1' } } } });
  const read = (name: string) => admin.readNamespacedPod({ name, namespace: 'vision' });
  const inPhase = (name: string, phase: string, timeoutMs?: number) =>
    until(
      `${name} ${phase}`,
      async () => {
        const p = await read(name);
        return p.status?.phase === phase && p;
      },
      timeoutMs,
    );

  await t.test('the node is Ready, keeps its GFD labels and allocatable, and gets the fraction capacity', async (t) => {
    const node = await until('tessera.io/gpu-milli on h100-0', async () => {
      const n = await admin.readNode({ name: 'h100-0' });
      return ['8k', '8000'].includes(String(n.status?.allocatable?.['tessera.io/gpu-milli'])) && n;
    });
    t.match(
      node.status!.conditions!.find((c) => c.type === 'Ready'),
      { status: 'True', reason: 'KubeletReady' },
    );
    t.match(node.metadata!.labels, gfd, 'GFD labels untouched');
    t.match(node.status!.allocatable, { cpu: '96', memory: '1Ti', pods: '110' }, 'the allocatable it registered with');
    t.notOk(
      (node.spec!.taints ?? []).some((x) => x.key === 'node.kubernetes.io/not-ready'),
      'the not-ready taint is gone',
    );
    t.match(node.status!.nodeInfo, { kubeletVersion: /^kwok-/ });
  });

  await t.test('a pod bound through the stack goes Running by itself', async (t) => {
    await admin.createNamespacedPod({ namespace: 'vision', body: gpuPod('forever', {}) });
    const p = await inPhase('forever', 'Running');
    t.equal(p.spec!.nodeName, 'h100-0');
    t.ok(p.metadata!.annotations!['tessera.io/assignment'], 'placed by the extender');
    t.match(p.status, {
      hostIP: '10.0.0.1',
      podIP: /^10\.244\./,
      startTime: Date,
      containerStatuses: [{ name: 'main', ready: true, started: true, state: { running: {} } }],
    });
    t.match(
      p.status!.conditions!.find((c) => c.type === 'Ready'),
      { status: 'True' },
    );
  });

  await t.test('a pod with a run time goes Succeeded after it', async (t) => {
    await admin.createNamespacedPod({ namespace: 'vision', body: gpuPod('short', lifecycleAnnotations('3s')) });
    const running = await inPhase('short', 'Running');
    const done = await inPhase('short', 'Succeeded', 30_000);
    const terminated = done.status!.containerStatuses![0]!.state!.terminated!;
    t.match(terminated, { exitCode: 0, reason: 'Completed' });
    const ran = terminated.finishedAt!.getTime() - running.status!.startTime!.getTime();
    t.ok(ran >= 3000 && ran < 10_000, `ran ${ran} ms for a run time of 3 s`);
    t.match(
      done.status!.conditions!.find((c) => c.type === 'Ready'),
      { status: 'False', reason: 'PodCompleted' },
    );
  });

  await t.test('a pod asked to fail goes Failed with its exit code', async (t) => {
    await admin.createNamespacedPod({
      namespace: 'vision',
      body: gpuPod('doomed', lifecycleAnnotations('1s', 'failed', 3)),
    });
    const p = await inPhase('doomed', 'Failed', 30_000);
    t.match(p.status!.containerStatuses![0]!.state!.terminated, { exitCode: 3, reason: 'Error' });
  });

  await t.test('a deletion with a grace period finishes', async (t) => {
    await admin.createNamespacedPod({ namespace: 'vision', body: gpuPod('deleted', {}) });
    await inPhase('deleted', 'Running');
    const started = Date.now();
    await admin.deleteNamespacedPod({ name: 'deleted', namespace: 'vision' });
    await until(
      'deleted gone',
      async () =>
        read('deleted').then(
          () => false,
          (e: { code?: number }) => e.code === 404,
        ),
      20_000,
    );
    t.ok(Date.now() - started < 15_000, `gone after ${Date.now() - started} ms, well within its 30 s grace period`);
  });

  await t.test('a Job runs to completion through Tessera', async (t) => {
    await batch.createNamespacedJob({
      namespace: 'vision',
      body: {
        metadata: { name: 'train', labels: LABELS },
        spec: {
          completions: 3,
          parallelism: 2,
          backoffLimit: 0,
          template: {
            metadata: {
              labels: LABELS,
              annotations: { 'tessera.io/gpu-fraction': '0.25', ...lifecycleAnnotations('2s') },
            },
            spec: {
              restartPolicy: 'Never',
              containers: [
                {
                  name: 'main',
                  image: 'registry.example/train:1',
                  resources: { requests: { cpu: '1', memory: '1Gi' } },
                },
              ],
            },
          },
        },
      },
    });
    const job = await until(
      'train Complete',
      async () => {
        const j = await batch.readNamespacedJob({ name: 'train', namespace: 'vision' });
        return j.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') && j;
      },
      90_000,
    );
    t.equal(job.status!.succeeded, 3);
    const pods = (
      await admin.listNamespacedPod({ namespace: 'vision', labelSelector: 'batch.kubernetes.io/job-name=train' })
    ).items;
    t.ok(
      pods.length >= 3 &&
        pods.every((p) => p.status?.phase === 'Succeeded' && p.metadata?.annotations?.['tessera.io/assignment']),
      'its pods were placed by Tessera and Succeeded',
    );
  });

  await t.test('the node Lease is renewed', async (t) => {
    const first = await leases.readNamespacedLease({ name: 'h100-0', namespace: 'kube-node-lease' });
    t.equal(first.spec?.leaseDurationSeconds, 5);
    t.match(first.metadata?.ownerReferences, [{ kind: 'Node', name: 'h100-0' }]);
    const renewed = await until(
      'a renewal',
      async () => {
        const l = await leases.readNamespacedLease({ name: 'h100-0', namespace: 'kube-node-lease' });
        // renewTime is a MicroTime, which the client leaves as the API's RFC 3339 string.
        return (
          new Date(l.spec!.renewTime as unknown as string).getTime() >
            new Date(first.spec!.renewTime as unknown as string).getTime() && l
        );
      },
      20_000,
    );
    t.equal(renewed.spec?.holderIdentity, first.spec?.holderIdentity, 'by the same KWOK');
  });

  await t.test('a KWOK restart: the next KWOK takes the node over and the pods go on', async (t) => {
    await admin.createNamespacedPod({ namespace: 'vision', body: gpuPod('across', lifecycleAnnotations('4s')) });
    const running = await inPhase('across', 'Running');
    const before = await leases.readNamespacedLease({ name: 'h100-0', namespace: 'kube-node-lease' });
    await stack.cluster.restartKwok();
    const done = await inPhase('across', 'Succeeded', 60_000);
    t.equal(done.status!.startTime!.getTime(), running.status!.startTime!.getTime(), 'started once');
    const after = await until(
      'the Lease held by the new KWOK',
      async () => {
        const l = await leases.readNamespacedLease({ name: 'h100-0', namespace: 'kube-node-lease' });
        return l.spec?.holderIdentity !== before.spec?.holderIdentity && l;
      },
      30_000,
    );
    t.ok(after.spec?.holderIdentity, 'a new holder');
    await admin.createNamespacedPod({ namespace: 'vision', body: gpuPod('after', {}) });
    await inPhase('after', 'Running');
    const node = await admin.readNode({ name: 'h100-0' });
    t.match(
      node.status!.conditions!.find((c) => c.type === 'Ready'),
      { status: 'True' },
      'the node stayed Ready',
    );
  });

  await t.test('what has no end keeps running, and KWOK leaves other nodes alone', async (t) => {
    t.equal((await read('forever')).status?.phase, 'Running', 'the pod without a run time is still Running');
    const n = await admin.readNode({ name: 'not-kwok' });
    t.notOk(
      n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      'the node without the annotation was never posted Ready',
    );
    t.notOk(n.status?.nodeInfo?.kubeletVersion, 'nor initialized');
  });
});
