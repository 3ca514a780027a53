// The living cluster under churn, through the real kube-scheduler: pods that finish free their GPUs and their tenant's
// quota, and waiting pods take the room with no nudge; a higher-priority pod preempts the fewest lower-priority pods
// that free a real placement on a shared GPU (fraction) or a MIG instance, then binds where they were.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { CoreV1Api, RbacAuthorizationV1Api, SchedulingV1Api, type V1Pod } from '@kubernetes/client-node';
import { lifecycleAnnotations } from '../kwok/kwok.ts';
import { createFakeNode, startStack } from './stack.ts';
import { until } from '../fixtures/waiting.ts';

// research gets a quota of 3 GPU-equivalents here, so that quota release is quick to see.
const POLICY = readFileSync(new URL('../../../shared/examples/policy.yaml', import.meta.url), 'utf8').replace(
  'quota: { gpus: 12 }',
  'quota: { gpus: 3 }',
);

const LABELS = { team: 'vision', 'cost-center': '1234' };

function gpuPod(name: string, annotations: Record<string, string>, priorityClassName?: string): V1Pod {
  return {
    metadata: { name, labels: LABELS, annotations },
    spec: {
      restartPolicy: 'Never',
      ...(priorityClassName ? { priorityClassName } : {}),
      containers: [
        { name: 'main', image: 'registry.example/train:1', resources: { requests: { cpu: '1', memory: '1Gi' } } },
      ],
    },
  };
}

const gpusOf = (p: V1Pod): number[] => {
  const a = p.metadata?.annotations?.['tessera.io/assignment'];
  return a ? (JSON.parse(a) as { gpus: { index: number }[] }).gpus.map((g) => g.index) : [];
};

t.test('churn: release, requeue, quota and preemption on shared GPUs', async (t) => {
  const stack = await startStack({ policy: POLICY, progress: (l) => t.comment(l), kwok: { leaseDurationSeconds: 10 } });
  t.teardown(() => stack.stop());
  const admin = stack.client('admin').makeApiClient(CoreV1Api);
  const bob = stack.client('bob@acme.example').makeApiClient(CoreV1Api);
  await stack
    .client('admin')
    .makeApiClient(SchedulingV1Api)
    .createPriorityClass({ body: { metadata: { name: 'research-batch' }, value: 100 } });
  await stack
    .client('admin')
    .makeApiClient(SchedulingV1Api)
    .createPriorityClass({ body: { metadata: { name: 'research-interactive' }, value: 1000 } });
  await stack
    .client('alice@acme.example')
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } } });
  await admin.createNamespacedServiceAccount({ namespace: 'vision', body: { metadata: { name: 'default' } } });
  const rbac = stack.client('admin').makeApiClient(RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({
    namespace: 'vision',
    body: {
      metadata: { name: 'tenant-user' },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'delete'] }],
    },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: 'vision',
    body: {
      metadata: { name: 'bob-edit' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'tenant-user' },
      subjects: [{ kind: 'User', name: 'bob@acme.example', apiGroup: 'rbac.authorization.k8s.io' }],
    },
  });
  const pool = (name: string) => ({
    'tessera.io/pool': name,
  });
  const taint = (name: string) => [{ key: 'tessera.io/pool', value: name, effect: 'NoSchedule' }];
  await createFakeNode(
    admin,
    {
      metadata: {
        name: 'h100-0',
        labels: {
          ...pool('shared-h100'),
          'tessera.io/sharing': 'fraction',
          'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3',
          'nvidia.com/gpu.count': '2',
          'nvidia.com/gpu.memory': '81559',
          'nvidia.com/gpu.sharing-strategy': 'none',
        },
      },
      spec: { taints: taint('shared-h100') },
    },
    { cpu: '64', memory: '512Gi', pods: '110' },
  );
  await createFakeNode(
    admin,
    {
      metadata: {
        name: 'a100-0',
        labels: {
          ...pool('a100-mig'),
          'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB',
          'nvidia.com/gpu.count': '1',
          'nvidia.com/mig.strategy': 'mixed',
          'nvidia.com/mig-3g.40gb.count': '2',
        },
      },
      spec: { taints: taint('a100-mig') },
    },
    { cpu: '64', memory: '512Gi', pods: '110', 'nvidia.com/mig-3g.40gb': '2' },
  );
  const read = (name: string) => admin.readNamespacedPod({ name, namespace: 'vision' });
  const bound = (name: string, timeoutMs = 60_000) =>
    until(
      `${name} bound`,
      async () => {
        const p = await read(name);
        return p.spec?.nodeName ? p : null;
      },
      timeoutMs,
    );
  const gone = (name: string) =>
    until(`${name} gone`, async () => {
      try {
        await read(name);
        return false;
      } catch {
        return true;
      }
    });
  const create = (pod: V1Pod) => bob.createNamespacedPod({ namespace: 'vision', body: pod });

  await t.test('a finished pod frees its GPU and its quota; the waiting pod is placed with no nudge', async (t) => {
    // Two whole GPUs fill the node; two more would put research over its quota of 3.
    await create(gpuPod('first', { 'tessera.io/gpu-count': '2', ...lifecycleAnnotations('4s') }));
    await bound('first');
    const denied = await create(gpuPod('quota-wait', { 'tessera.io/gpu-count': '2' })).then(
      () => null,
      (e: { body?: string }) => String(e.body ?? e),
    );
    t.match(denied, /tenant research has a quota of 3 GPU-equivalents/, 'over quota while the first pod runs');
    await until('first Succeeded', async () => (await read('first')).status?.phase === 'Succeeded');
    const next = await until('quota released at admission', () =>
      create(gpuPod('after', { 'tessera.io/gpu-count': '2', ...lifecycleAnnotations('3s') })).then(() => true),
    );
    t.ok(next);
    const placed = await bound('after');
    t.same(gpusOf(placed).sort(), [0, 1], 'the finished pod’s GPUs went to the next pod');
    // A pod that cannot fit waits with a reason; when the holder finishes, kube-scheduler requeues it by itself.
    await create(gpuPod('waiter', { 'tessera.io/gpu-fraction': '0.5' }));
    const waiting = await until('waiter unschedulable with a reason', async () => {
      const p = await read('waiter');
      if (p.spec?.nodeName) return null;
      return p.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False') ?? null;
    });
    t.match(waiting.message, /GpuCompute|GpusExhausted|gpu-milli/, `pending with the reason: ${waiting.message}`);
    const waiter = await bound('waiter');
    t.equal((await read('after')).status?.phase, 'Succeeded', 'placed once the holder finished');
    t.equal(gpusOf(waiter).length, 1);
    await admin.deleteNamespacedPod({ name: 'waiter', namespace: 'vision' });
    await gone('waiter');
  });

  await t.test('preemption on a shared GPU takes the fewest victims that free one GPU', async (t) => {
    // GPU layout the extender chooses: two halves and four quarters, two GPUs full. Everything at research-batch.
    const low = ['h0', 'h1'].map((n) => gpuPod(n, { 'tessera.io/gpu-fraction': '0.5' }, 'research-batch'));
    const quarters = ['q0', 'q1', 'q2', 'q3'].map((n) =>
      gpuPod(n, { 'tessera.io/gpu-fraction': '0.25' }, 'research-batch'),
    );
    for (const p of [...low, ...quarters]) {
      await create(p);
      await bound(p.metadata!.name!);
    }
    const before = new Map<string, number[]>();
    for (const n of ['h0', 'h1', 'q0', 'q1', 'q2', 'q3']) before.set(n, gpusOf(await read(n)));
    t.comment(`layout: ${JSON.stringify(Object.fromEntries(before))}`);
    await create(gpuPod('urgent', { 'tessera.io/gpu-fraction': '0.5' }, 'research-interactive'));
    const urgent = await bound('urgent', 90_000);
    const survivors: string[] = [];
    for (const n of before.keys()) {
      try {
        await read(n);
        survivors.push(n);
      } catch {
        // preempted
      }
    }
    const victims = [...before.keys()].filter((n) => !survivors.includes(n));
    t.equal(victims.length, 1, `exactly one victim: ${victims.join(', ')}`);
    t.equal(before.get(victims[0]!)!.length, 1);
    t.same(gpusOf(urgent), before.get(victims[0]!), 'the preemptor binds on the GPU its victim freed');
    t.equal(urgent.spec?.nodeName, 'h100-0');
    for (const n of [...survivors, 'urgent']) await admin.deleteNamespacedPod({ name: n, namespace: 'vision' });
    for (const n of [...survivors, 'urgent']) await gone(n);
  });

  await t.test('preemption on MIG takes the one pod that holds the profile', async (t) => {
    const mig = (name: string, pc: string) => gpuPod(name, { 'tessera.io/mig-profile': '3g.40gb' }, pc);
    for (const n of ['m0', 'm1']) {
      await create(mig(n, 'research-batch'));
      await bound(n);
    }
    await create(mig('m-urgent', 'research-interactive'));
    const urgent = await bound('m-urgent', 90_000);
    t.equal(urgent.spec?.nodeName, 'a100-0');
    const left = (await bob.listNamespacedPod({ namespace: 'vision' })).items
      .map((p) => p.metadata!.name!)
      .filter((n) => n.startsWith('m'));
    t.equal(left.length, 2, `one of m0/m1 was preempted, the other runs: ${left.join(', ')}`);
  });
});
