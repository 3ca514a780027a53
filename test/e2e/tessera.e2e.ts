import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';
import { pino } from 'pino';
import { ConflictError, kubernetesWriter } from '../../extender/cluster-writer.ts';
import { startExtender } from '../../extender/server.ts';
import { explainCommand } from '../../cli/explain.ts';
import { freePort } from '../controlplane/cluster.ts';
import { createFakeNode, EXTENDER_USER, startStack, type Stack } from './stack.ts';
import { until, apiErrorMessage as message } from '../fixtures/waiting.ts';

const POLICY = readFileSync(new URL('../../../shared/examples/policy.yaml', import.meta.url), 'utf8');

function api(kc: KubeConfig): CoreV1Api {
  return kc.makeApiClient(CoreV1Api);
}

const fractionNode = (name: string) => ({
  metadata: {
    name,
    labels: {
      'tessera.io/pool': 'shared-h100',
      'tessera.io/sharing': 'fraction',
      'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3',
      'nvidia.com/gpu.count': '8',
      'nvidia.com/gpu.memory': '81559',
      'nvidia.com/gpu.sharing-strategy': 'none',
    },
  },
  spec: { taints: [{ key: 'tessera.io/pool', value: 'shared-h100', effect: 'NoSchedule' }] },
});

const gpuPod = (name: string, namespace: string, annotations: Record<string, string>) => ({
  metadata: { name, namespace, labels: { team: 'vision', 'cost-center': '1234' }, annotations },
  spec: {
    runtimeClassName: undefined,
    containers: [
      { name: 'main', image: 'registry.example/train:1', resources: { requests: { cpu: '1', memory: '1Gi' } } },
    ],
  },
});

t.test('Tessera on a real kube-apiserver and kube-scheduler', async (t) => {
  const logFile = process.env.TESSERA_E2E_LOG;
  const stack: Stack = await startStack({
    policy: POLICY,
    progress: (l) => t.comment(l),
    ...(logFile ? { log: pino({ level: 'debug' }, pino.destination(logFile)) } : {}),
  });
  t.teardown(() => stack.stop());
  const admin = api(stack.client('admin'));
  const alice = api(stack.client('alice@acme.example'));
  const bob = api(stack.client('bob@acme.example'));

  // The fleet: two fraction H100 nodes (GFD labels, run by KWOK), tenant namespaces by an admin.
  for (const name of ['h100-0', 'h100-1']) {
    await createFakeNode(admin, fractionNode(name), { cpu: '96', memory: '1Ti', pods: '110' });
  }
  await alice.createNamespace({ body: { metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } } });
  await alice.createNamespace({ body: { metadata: { name: 'scratch' } } });
  const rbac = stack.client('admin').makeApiClient(RbacAuthorizationV1Api);
  // The built-in edit role is filled by kube-controller-manager's aggregation, which this control plane does not run.
  await rbac.createClusterRole({
    body: {
      metadata: { name: 'tenant-user' },
      rules: [
        {
          apiGroups: [''],
          resources: ['pods', 'pods/ephemeralcontainers'],
          verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
        },
        { apiGroups: ['apps', 'batch'], resources: ['*'], verbs: ['*'] },
      ],
    },
  });
  for (const ns of ['vision', 'scratch']) {
    await admin.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'bob-edit' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'tenant-user' },
        subjects: [{ kind: 'User', name: 'bob@acme.example', apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
  }

  await t.test('the extender advertises fraction capacity on fraction nodes', async (t) => {
    const node = await until('tessera.io/gpu-milli on h100-0', async () => {
      const n = await admin.readNode({ name: 'h100-0' });
      return ['8k', '8000'].includes(String(n.status?.allocatable?.['tessera.io/gpu-milli'])) && n;
    });
    t.match(node.status!.capacity!['tessera.io/gpu-milli'], /^(8k|8000)$/, '1000 per GPU of the 8 that GFD counts');
  });

  await t.test('only platform admins set a namespace tenant; the denial reaches the client', async (t) => {
    // bob may create namespaces (RBAC), but not put a tenant on them (Tessera).
    await rbac.createClusterRole({
      body: {
        metadata: { name: 'namespace-creator' },
        rules: [{ apiGroups: [''], resources: ['namespaces'], verbs: ['create'] }],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: 'bob-namespaces' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'namespace-creator' },
        subjects: [{ kind: 'User', name: 'bob@acme.example', apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
    await bob
      .createNamespace({ body: { metadata: { name: 'mine', labels: { 'tessera.io/tenant': 'research' } } } })
      .then(
        () => t.fail('should be denied'),
        (e) =>
          t.match(
            message(e),
            /bob@acme.example may not set tessera.io\/tenant=research on namespace mine; only platform admins/,
          ),
      );
  });

  let first: V1Pod;
  await t.test(
    'a fraction pod is admitted, scheduled by the extender, and gets its assignment and env wiring',
    async (t) => {
      await bob.createNamespacedPod({
        namespace: 'vision',
        body: gpuPod('quarter', 'vision', { 'tessera.io/gpu-fraction': '0.25' }),
      });
      first = await until('quarter bound', async () => {
        const p = await bob.readNamespacedPod({ name: 'quarter', namespace: 'vision' });
        return p.spec?.nodeName ? p : null;
      });
      t.equal(first.spec!.schedulerName, 'tessera-scheduler');
      t.same(first.spec!.containers[0]!.resources!.limits, { 'tessera.io/gpu-milli': '250' });
      t.match(first.spec!.containers[0]!.env, [
        {
          name: 'NVIDIA_VISIBLE_DEVICES',
          valueFrom: { fieldRef: { fieldPath: "metadata.annotations['tessera.io/visible-devices']" } },
        },
      ]);
      const assignment = JSON.parse(first.metadata!.annotations!['tessera.io/assignment']!);
      t.equal(assignment.node, first.spec!.nodeName);
      t.match(assignment.gpus, [{ milli: 250, memoryMiB: 20389 }]);
      t.equal(first.metadata!.annotations!['tessera.io/visible-devices'], String(assignment.gpus[0].index));
      t.equal(first.metadata!.annotations!['tessera.io/policy-revision'], stack.webhook!.policies.status().revision);
    },
  );

  await t.test('tessera explain against the live cluster runs the extender’s code on the API’s state', async (t) => {
    await bob.createNamespacedPod({
      namespace: 'vision',
      body: gpuPod('explained', 'vision', { 'tessera.io/gpu-fraction': '0.5' }),
    });
    const previous = process.env.KUBECONFIG;
    process.env.KUBECONFIG = stack.cluster.kubeconfigFor('admin');
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => lines.push(a.join(' '));
    try {
      t.equal(await explainCommand(['explained', '-n', 'vision', '--policy', stack.policyDir, '--json']), 0);
    } finally {
      console.log = log;
      if (previous === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = previous;
    }
    const out = JSON.parse(lines.join('\n')) as {
      nodes: { name: string; feasible: boolean }[];
      choice: { node: string; gpus: { milli: number }[] } | null;
    };
    t.ok(
      out.nodes.some((n) => n.feasible),
      'some node fits',
    );
    t.match(out.choice, { node: /^h100-/, gpus: [{ milli: 500 }] });
    // Out of the way of the quota test: deleted at once (no grace period), and a moment for the webhook's cache to see it.
    await bob.deleteNamespacedPod({ name: 'explained', namespace: 'vision', gracePeriodSeconds: 0 });
    await new Promise((r) => setTimeout(r, 1000));
  });

  await t.test('denials reach the client with their messages', async (t) => {
    await bob
      .createNamespacedPod({
        namespace: 'scratch',
        body: gpuPod('nogo', 'scratch', { 'tessera.io/gpu-fraction': '0.5' }),
      })
      .then(
        () => t.fail('should be denied'),
        (e) => t.match(message(e), /namespace scratch has no tessera.io\/tenant label/),
      );
    const forged = gpuPod('forged', 'vision', {
      'tessera.io/gpu-fraction': '0.5',
      'tessera.io/assignment': '{"node":"h100-0","gpus":[{"index":0,"milli":1000,"memoryMiB":1}]}',
    });
    await bob.createNamespacedPod({ namespace: 'vision', body: forged }).then(
      () => t.fail('should be denied'),
      (e) => t.match(message(e), /tessera.io\/assignment is written only by Tessera/),
    );
  });

  await t.test('bind is one write: nodeName and the assignment arrive in the same update', async (t) => {
    const seen: V1Pod[] = [];
    const watching = await new Watch(stack.client('admin')).watch(
      '/api/v1/namespaces/vision/pods',
      { fieldSelector: 'metadata.name=one-write' },
      (_phase, pod: V1Pod) => seen.push(pod),
      () => {},
    );
    t.teardown(() => watching.abort());
    await bob.createNamespacedPod({
      namespace: 'vision',
      body: gpuPod('one-write', 'vision', { 'tessera.io/gpu-fraction': '0.25' }),
    });
    await until('one-write bound, as the watch reports it', async () => seen.some((p) => p.spec?.nodeName));
    const annotated = (p: V1Pod) =>
      p.metadata?.annotations?.['tessera.io/assignment'] !== undefined ||
      p.metadata?.annotations?.['tessera.io/visible-devices'] !== undefined;
    t.ok(
      seen.some((p) => !p.spec?.nodeName && !annotated(p)),
      'the watch saw the pod pending, without an assignment',
    );
    t.same(
      seen.filter((p) => annotated(p) !== Boolean(p.spec?.nodeName)).map((p) => p.metadata?.resourceVersion),
      [],
      'no version of the pod has the assignment without nodeName, or nodeName without the assignment',
    );
    const bound = seen.find((p) => p.spec?.nodeName)!;
    const assignment = JSON.parse(bound.metadata!.annotations!['tessera.io/assignment']!);
    t.equal(assignment.node, bound.spec!.nodeName, 'the first bound version carries its assignment');
    t.equal(bound.metadata!.annotations!['tessera.io/visible-devices'], String(assignment.gpus[0].index));
    t.match(
      bound.status?.conditions,
      [{ type: 'PodScheduled', status: 'True' }],
      'and the PodScheduled condition, same write',
    );
    await bob.deleteNamespacedPod({ name: 'one-write', namespace: 'vision', gracePeriodSeconds: 0 });
  });

  await t.test('Bindings: only Tessera binds GPU pods or writes the assignment; a wrong UID is refused', async (t) => {
    // bob may create Bindings in vision (RBAC); Tessera still decides which.
    await rbac.createNamespacedRole({
      namespace: 'vision',
      body: {
        metadata: { name: 'binder' },
        rules: [{ apiGroups: [''], resources: ['pods/binding', 'bindings'], verbs: ['create'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: 'vision',
      body: {
        metadata: { name: 'bob-binder' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'binder' },
        subjects: [{ kind: 'User', name: 'bob@acme.example', apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
    // Pending and out of the scheduler's way: a scheduling gate.
    const held = gpuPod('held', 'vision', { 'tessera.io/gpu-fraction': '0.25' });
    const plain = {
      metadata: { name: 'plain', namespace: 'vision', labels: { team: 'vision', 'cost-center': '1234' } },
      spec: { containers: [{ name: 'main', image: 'registry.example/web:1' }] },
    };
    for (const body of [held, plain]) {
      (body.spec as { schedulingGates?: { name: string }[] }).schedulingGates = [{ name: 'example.com/hold' }];
      await bob.createNamespacedPod({ namespace: 'vision', body });
    }
    const heldPod = await bob.readNamespacedPod({ name: 'held', namespace: 'vision' });
    const binding = (name: string, annotations?: Record<string, string>) => ({
      apiVersion: 'v1',
      kind: 'Binding',
      metadata: { name, namespace: 'vision', ...(annotations ? { annotations } : {}) },
      target: { apiVersion: 'v1', kind: 'Node', name: 'h100-0' },
    });
    const forged = {
      'tessera.io/assignment': '{"node":"h100-0","gpus":[{"index":0,"milli":1000,"memoryMiB":81559}]}',
      'tessera.io/visible-devices': '0,1,2,3,4,5,6,7',
    };
    await bob.createNamespacedPodBinding({ name: 'held', namespace: 'vision', body: binding('held', forged) }).then(
      () => t.fail('should be denied'),
      (e) => {
        const m = message(e);
        t.match(
          m,
          /\[tessera\/system-owned\] the Binding of pod vision\/held sets annotation tessera.io\/assignment, which only Tessera's extender writes.*bob@acme.example may not. Remove it from the Binding/,
        );
        t.match(m, /annotation tessera.io\/visible-devices/);
        t.match(
          m,
          /\[tessera\/accounting\] pod vision\/held asks for tessera.io\/gpu-milli, so only Tessera's extender may bind it/,
        );
      },
    );
    await bob.createNamespacedBinding({ namespace: 'vision', body: binding('held') }).then(
      () => t.fail('should be denied'),
      (e) => t.match(message(e), /pod vision\/held asks for tessera.io\/gpu-milli/, 'the older bindings resource too'),
    );
    await bob
      .createNamespacedPodBinding({
        name: 'plain',
        namespace: 'vision',
        body: binding('plain', { 'tessera.io/visible-devices': '0' }),
      })
      .then(
        () => t.fail('should be denied'),
        (e) =>
          t.match(message(e), /sets annotation tessera.io\/visible-devices/, 'a non-GPU pod cannot get GPUs this way'),
      );
    // A Binding the webhook allows reaches the API server's own checks (here: the scheduling gate).
    await bob.createNamespacedPodBinding({ name: 'plain', namespace: 'vision', body: binding('plain') }).then(
      () => t.fail('the gate should refuse it'),
      (e) =>
        t.match(message(e), /non-empty .spec.schedulingGates/, 'a plain Binding of a non-GPU pod passes the webhook'),
    );

    const writer = kubernetesWriter(stack.client(EXTENDER_USER));
    await writer.bindPod('vision', 'held', 'not-the-uid', 'h100-0', forged).then(
      () => t.fail('a wrong UID should be refused'),
      (e) => {
        t.ok(e instanceof ConflictError, 'a 409, which bind counts as a conflict');
        t.match(e.message, /Precondition failed: UID in precondition: not-the-uid/);
      },
    );
    const after = await bob.readNamespacedPod({ name: 'held', namespace: 'vision' });
    t.equal(after.spec?.nodeName, undefined, 'nothing was written');
    t.equal(after.metadata?.annotations?.['tessera.io/assignment'], undefined);
    t.equal(after.metadata?.resourceVersion, heldPod.metadata?.resourceVersion);
    for (const name of ['held', 'plain'])
      await bob.deleteNamespacedPod({ name, namespace: 'vision', gracePeriodSeconds: 0 });
    // Out of the quota test's way: a moment for the webhook's cache to see them gone.
    await new Promise((r) => setTimeout(r, 1000));
  });

  await t.test('drift: guarded fields cannot be edited on a running pod', async (t) => {
    const patch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    await bob
      .patchNamespacedPod(
        {
          name: 'quarter',
          namespace: 'vision',
          body: { metadata: { annotations: { 'tessera.io/gpu-fraction': '1' } } },
        },
        patch,
      )
      .then(
        () => t.fail('should be denied'),
        (e) => t.match(message(e), /frozen-gpu-intent.*may not change after admission/),
      );
  });

  await t.test('quota: the tenant cannot go over 12 GPU-equivalents', async (t) => {
    await bob.createNamespacedPod({
      namespace: 'vision',
      body: gpuPod('eight', 'vision', { 'tessera.io/gpu-count': '8' }),
    });
    await until(
      'eight bound',
      async () => (await bob.readNamespacedPod({ name: 'eight', namespace: 'vision' })).spec?.nodeName,
    );
    await bob
      .createNamespacedPod({ namespace: 'vision', body: gpuPod('four', 'vision', { 'tessera.io/gpu-count': '4' }) })
      .then(
        () => t.fail('should be denied'),
        (e) =>
          t.match(
            message(e),
            /tenant research has a quota of 12 GPU-equivalents; 8.25 are held by 2 pod\(s\) and this pod needs 4/,
          ),
      );
  });

  await t.test('an extender restart in the middle of a burst never double-allocates', async (t) => {
    for (let i = 0; i < 12; i++)
      await bob.createNamespacedPod({
        namespace: 'vision',
        body: gpuPod(`burst-${i}`, 'vision', { 'tessera.io/gpu-fraction': '0.3' }),
      });
    await until(
      'some burst pods bound',
      async () =>
        (await bob.listNamespacedPod({ namespace: 'vision' })).items.filter(
          (p) => p.metadata?.name?.startsWith('burst-') && p.spec?.nodeName,
        ).length >= 3,
    );
    await stack.stopExtender();
    await stack.startExtender();
    const pods = await until(
      'all burst pods bound',
      async () => {
        const list = (await bob.listNamespacedPod({ namespace: 'vision' })).items;
        const burst = list.filter((p) => p.metadata?.name?.startsWith('burst-'));
        return burst.every((p) => p.spec?.nodeName) && list;
      },
      120_000,
    );
    const perGpu = new Map<string, number>();
    for (const p of pods) {
      const a = p.metadata?.annotations?.['tessera.io/assignment'];
      if (!a) continue;
      const assignment = JSON.parse(a) as { node: string; gpus: { index: number; milli: number }[] };
      t.equal(assignment.node, p.spec!.nodeName, `${p.metadata!.name}: assignment matches its node`);
      for (const g of assignment.gpus)
        perGpu.set(`${assignment.node}/${g.index}`, (perGpu.get(`${assignment.node}/${g.index}`) ?? 0) + g.milli);
    }
    t.ok(
      [...perGpu.values()].every((m) => m <= 1000),
      `no GPU above 1000m: ${JSON.stringify(Object.fromEntries(perGpu))}`,
    );
  });

  await t.test('device-plugin modes: MIG and time-slicing pools are placed through the extender too', async (t) => {
    const gfd = (product: string, extra: Record<string, string>) => ({ 'nvidia.com/gpu.product': product, ...extra });
    const nodes: { name: string; pool: string; labels: Record<string, string>; resources: Record<string, string> }[] = [
      {
        name: 'a100-0',
        pool: 'a100-mig',
        labels: gfd('NVIDIA-A100-SXM4-80GB', {
          'nvidia.com/gpu.count': '1',
          'nvidia.com/mig.strategy': 'mixed',
          'nvidia.com/mig-2g.20gb.count': '3',
        }),
        resources: { 'nvidia.com/mig-2g.20gb': '3' },
      },
      {
        name: 'l4-0',
        pool: 'l4-timesliced',
        labels: gfd('NVIDIA-L4', {
          'nvidia.com/gpu.count': '1',
          'nvidia.com/gpu.sharing-strategy': 'time-slicing',
          'nvidia.com/gpu.replicas': '4',
        }),
        resources: { 'nvidia.com/gpu.shared': '4' },
      },
      {
        name: 'eu-0',
        pool: 'sovereign-eu',
        labels: {
          ...gfd('NVIDIA-H100-80GB-HBM3', { 'nvidia.com/gpu.count': '2', 'nvidia.com/gpu.sharing-strategy': 'none' }),
          'topology.kubernetes.io/region': 'eu-central',
        },
        resources: { 'nvidia.com/gpu': '2' },
      },
    ];
    // Make room in the tenant's quota: the 8-GPU pod of the quota test goes (no grace period, so at once).
    await bob.deleteNamespacedPod({ name: 'eight', namespace: 'vision', gracePeriodSeconds: 0 });
    for (const n of nodes) {
      await createFakeNode(
        admin,
        {
          metadata: { name: n.name, labels: { ...n.labels, 'tessera.io/pool': n.pool } },
          spec: { taints: [{ key: 'tessera.io/pool', value: n.pool, effect: 'NoSchedule' }] },
        },
        { cpu: '32', memory: '256Gi', pods: '110', ...n.resources },
      );
    }
    const asks: [string, Record<string, string>, string, Record<string, string>][] = [
      [
        'mig-quarter',
        { 'tessera.io/pool': 'a100-mig', 'tessera.io/gpu-fraction': '0.25' },
        'a100-0',
        { 'nvidia.com/mig-2g.20gb': '1' },
      ],
      [
        'ts-quarter',
        { 'tessera.io/pool': 'l4-timesliced', 'tessera.io/gpu-fraction': '0.25' },
        'l4-0',
        { 'nvidia.com/gpu.shared': '1' },
      ],
    ];
    for (const [name, annotations, node, limits] of asks) {
      await bob.createNamespacedPod({ namespace: 'vision', body: gpuPod(name, 'vision', annotations) });
      const p = await until(`${name} bound`, async () => {
        const pod = await bob.readNamespacedPod({ name, namespace: 'vision' });
        return pod.spec?.nodeName ? pod : null;
      });
      t.equal(p.spec!.nodeName, node, `${name} placed on ${node}`);
      t.same(p.spec!.containers[0]!.resources!.limits, limits);
      t.equal(
        p.metadata!.annotations?.['tessera.io/assignment'],
        undefined,
        'the device plugin picks the device on device-plugin nodes',
      );
    }
    await bob.createNamespacedPod({
      namespace: 'vision',
      body: gpuPod('mig-4th', 'vision', { 'tessera.io/pool': 'a100-mig', 'tessera.io/gpu-fraction': '0.25' }),
    });
    for (const n of ['mig-a', 'mig-b'])
      await bob.createNamespacedPod({
        namespace: 'vision',
        body: gpuPod(n, 'vision', { 'tessera.io/pool': 'a100-mig', 'tessera.io/gpu-fraction': '0.25' }),
      });
    const pending = await until('a MIG pod left pending with the extender’s reason', async () => {
      const list = (await bob.listNamespacedPod({ namespace: 'vision' })).items.filter((p) =>
        ['mig-4th', 'mig-a', 'mig-b'].includes(p.metadata!.name!),
      );
      const waiting = list.find((p) =>
        p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.reason === 'Unschedulable'),
      );
      return list.filter((p) => p.spec?.nodeName).length === 2 && waiting;
    });
    t.match(
      pending.status!.conditions!.find((c) => c.type === 'PodScheduled')!.message,
      /MigProfileExhausted|Insufficient nvidia.com\/mig-2g.20gb/,
      'three 2g.20gb instances, four asks: one waits, with a reason',
    );
  });

  await t.test(
    'MPS and whole-GPU pools: a second policy file adds an MPS pool (files merge), carol gets a sovereign GPU',
    async (t) => {
      const before = stack.webhook!.policies.status().revision;
      writeFileSync(
        join(stack.policyDir, 'hpc.yaml'),
        [
          'apiVersion: tessera.io/v1alpha1',
          'kind: TesseraPolicy',
          'metadata: { name: hpc }',
          'spec:',
          '  pools:',
          '    - name: a30-mps',
          '      nodeSelector: { tessera.io/pool: a30-mps }',
          '      taint: { key: tessera.io/pool, value: a30-mps, effect: NoSchedule }',
          '      fractionMode: mps',
          '      gpuModel: A30',
          '      replicas: 2',
          '  tenants:',
          '    - name: hpc',
          '      pools: [a30-mps]',
          '      quota: { gpus: 2 }',
          '',
        ].join('\n'),
      );
      await until(
        'the webhook loads the second file',
        async () => stack.webhook!.policies.status().revision !== before,
      );
      await until('the extender loads it too', async () =>
        stack.extender!.state.policy?.pools.some((p) => p.name === 'a30-mps'),
      );
      await createFakeNode(
        admin,
        {
          metadata: {
            name: 'a30-0',
            labels: {
              'tessera.io/pool': 'a30-mps',
              'nvidia.com/gpu.product': 'NVIDIA-A30',
              'nvidia.com/gpu.count': '1',
              'nvidia.com/gpu.memory': '24576',
              'nvidia.com/gpu.sharing-strategy': 'mps',
              'nvidia.com/gpu.replicas': '2',
            },
          },
          spec: { taints: [{ key: 'tessera.io/pool', value: 'a30-mps', effect: 'NoSchedule' }] },
        },
        { cpu: '32', memory: '128Gi', pods: '110', 'nvidia.com/gpu': '2' },
      );
      for (const [ns, tenant, user] of [
        ['hpc', 'hpc', 'bob@acme.example'],
        ['risk', 'payments-ml', 'carol@acme.example'],
      ] as const) {
        await alice.createNamespace({ body: { metadata: { name: ns, labels: { 'tessera.io/tenant': tenant } } } });
        await admin.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } });
        await rbac.createNamespacedRoleBinding({
          namespace: ns,
          body: {
            metadata: { name: 'user-pods' },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'tenant-user' },
            subjects: [{ kind: 'User', name: user, apiGroup: 'rbac.authorization.k8s.io' }],
          },
        });
      }
      const carol = api(stack.client('carol@acme.example'));
      await bob.createNamespacedPod({
        namespace: 'hpc',
        body: gpuPod('mps-half', 'hpc', { 'tessera.io/gpu-fraction': '0.5' }),
      });
      const eu = gpuPod('eu-serve', 'risk', { 'tessera.io/gpu-count': '1' });
      eu.spec.containers[0]!.image = 'registry.eu.acme.example/risk:1';
      await carol.createNamespacedPod({ namespace: 'risk', body: eu });
      for (const [client, ns, name, node] of [
        [bob, 'hpc', 'mps-half', 'a30-0'],
        [carol, 'risk', 'eu-serve', 'eu-0'],
      ] as const) {
        const p = await until(`${name} bound`, async () => {
          const pod = await client.readNamespacedPod({ name, namespace: ns });
          return pod.spec?.nodeName ? pod : null;
        });
        t.equal(p.spec!.nodeName, node, `${ns}/${name} placed on ${node}`);
        t.same(p.spec!.containers[0]!.resources!.limits, { 'nvidia.com/gpu': '1' }, 'one MPS replica / one whole GPU');
      }
    },
  );

  await t.test('drift findings become PolicyReports where the CRD is installed', async (t) => {
    const kc = stack.client('admin');
    const { ApiextensionsV1Api, CustomObjectsApi } = await import('@kubernetes/client-node');
    await kc.makeApiClient(ApiextensionsV1Api).createCustomResourceDefinition({
      body: {
        metadata: { name: 'policyreports.wgpolicyk8s.io' },
        spec: {
          group: 'wgpolicyk8s.io',
          scope: 'Namespaced',
          names: {
            kind: 'PolicyReport',
            listKind: 'PolicyReportList',
            plural: 'policyreports',
            singular: 'policyreport',
          },
          versions: [
            {
              name: 'v1alpha2',
              served: true,
              storage: true,
              schema: { openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true } },
            },
          ],
        },
      },
    });
    // A pod without the chargeback labels drifts from the warn rule.
    await bob.createNamespacedPod({
      namespace: 'vision',
      body: {
        ...gpuPod('unlabelled', 'vision', { 'tessera.io/gpu-fraction': '0.1' }),
        metadata: { name: 'unlabelled', namespace: 'vision', annotations: { 'tessera.io/gpu-fraction': '0.1' } },
      },
    });
    const custom = kc.makeApiClient(CustomObjectsApi);
    type Report = { results: { rule: string; result: string; resources: { name: string }[] }[] };
    const reported = (r: Report) =>
      r.results.some(
        (x) => x.rule === 'chargeback-labels' && x.result === 'warn' && x.resources[0]!.name === 'unlabelled',
      );
    // The audit runs periodically: wait for a report that has seen the new pod, not just for the report.
    const report = await until(
      'a PolicyReport in vision naming the unlabelled pod',
      async () => {
        const r = (await custom.getNamespacedCustomObject({
          group: 'wgpolicyk8s.io',
          version: 'v1alpha2',
          namespace: 'vision',
          plural: 'policyreports',
          name: 'tessera-drift',
        })) as Report;
        return reported(r) ? r : null;
      },
      60_000,
    );
    t.ok(reported(report), 'the unlabelled pod is reported under chargeback-labels');
  });

  await t.test('high availability: a second extender replica stays unready until the leader goes away', async (t) => {
    const port = await freePort();
    const standby = await startExtender({
      kubeconfig: stack.client(EXTENDER_USER),
      policyDir: stack.policyDir,
      host: '127.0.0.1',
      port,
      leaseNamespace: 'tessera-system',
      identity: 'standby',
      log: pino({ level: 'silent' }),
    });
    t.teardown(() => standby.close());
    // Once its caches are synced (slow on a busy machine), the standby still refuses: it does not hold the lease.
    const refused = await until(
      'the synced standby refusing as a standby',
      async () => {
        const r = (await fetch(`http://127.0.0.1:${port}/filter`, {
          method: 'POST',
          body: JSON.stringify({ Pod: {}, NodeNames: ['h100-0'] }),
        }).then((x) => x.json())) as { Error?: string };
        return /not the leader/.test(r.Error ?? '') ? r : null;
      },
      60_000,
    );
    t.match(refused, { Error: /not the leader/ }, 'and refuses to decide');
    t.equal(standby.ready(), false, 'the standby is not Ready while the leader holds the lease');
    await stack.stopExtender();
    await until('the standby takes over', async () => standby.ready(), 30_000);
    t.pass('the standby became leader after the old leader released the lease');
  });

  await t.test('webhook down: GPU pods are rejected (fail closed) while kube-system keeps working', async (t) => {
    await admin
      .createNamespacedServiceAccount({ namespace: 'kube-system', body: { metadata: { name: 'default' } } })
      .catch(() => {});
    await stack.stopWebhook();
    await bob
      .createNamespacedPod({
        namespace: 'vision',
        body: gpuPod('closed', 'vision', { 'tessera.io/gpu-fraction': '0.5' }),
      })
      .then(
        () => t.fail('should fail closed'),
        (e) => t.match(message(e), /failed calling webhook/),
      );
    const sys = await admin.createNamespacedPod({
      namespace: 'kube-system',
      body: {
        metadata: { name: 'still-works' },
        spec: { containers: [{ name: 'c', image: 'registry.k8s.io/pause:3.10' }] },
      },
    });
    t.equal(sys.metadata!.name, 'still-works');
    await stack.startWebhook();
  });
});
