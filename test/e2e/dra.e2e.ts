// DRA end to end on the real control plane (kube-apiserver, kube-scheduler and kube-controller-manager v1.37.2, nodes
// run by KWOK): DeviceClasses as NVIDIA's chart writes them, ResourceSlices published for fake nodes as NVIDIA's
// driver would, pods with claims and pods with nvidia.com/gpu on the DRA pool bound by the real scheduler through
// Tessera's extender with their claims allocated, denials reaching the client through the API server, and quota and
// tenant isolation across device-plugin and DRA pools at once.

import t from 'tap';
import {
  CoreV1Api,
  type KubeConfig,
  KubernetesObjectApi,
  type KubernetesObject,
  PatchStrategy,
  RbacAuthorizationV1Api,
  ResourceV1Api,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { pino } from 'pino';
import { DEFAULT_CONTROLLERS } from '../controlplane/cluster.ts';
import {
  claimTemplate,
  DRA_POLICY_TEXT,
  exactly,
  gpuDevice,
  migDevice,
  migProfileClass,
  nodeSlice,
  NVIDIA_CLASSES,
  profileSelector,
} from '../fixtures/dra.ts';
import { createFakeNode, startStack, type Stack } from './stack.ts';
import { type Probe, until as waitUntil, apiErrorMessage as message } from '../fixtures/waiting.ts';

/** This suite's waits are longer than the default: a real node (or DRA's controllers) on a busy machine. */
const until = <T>(what: string, probe: Probe<T>, timeoutMs = 90_000) => waitUntil(what, probe, timeoutMs);

const labels = { team: 'vision', 'cost-center': '1234' };

function claimPod(name: string, namespace: string, template: string, image = 'registry.example/train:1'): V1Pod {
  return {
    metadata: { name, namespace, labels },
    spec: {
      resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: template }],
      containers: [
        {
          name: 'main',
          image,
          resources: { requests: { cpu: '1', memory: '1Gi' }, claims: [{ name: 'gpu' }] },
        },
      ],
    },
  };
}

function annotatedPod(
  name: string,
  namespace: string,
  annotations: Record<string, string>,
  image = 'registry.example/train:1',
): V1Pod {
  return {
    metadata: { name, namespace, labels, annotations },
    spec: { containers: [{ name: 'main', image, resources: { requests: { cpu: '1', memory: '1Gi' } } }] },
  };
}

const draNode = (name: string) => ({
  metadata: { name, labels: { 'tessera.io/pool': 'dra-h100' } },
  spec: { taints: [{ key: 'tessera.io/pool', value: 'dra-h100', effect: 'NoSchedule' }] },
});

t.test('DRA-managed GPUs through Tessera on a real control plane', async (t) => {
  const logFile = process.env.TESSERA_E2E_LOG;
  const stack: Stack = await startStack({
    policy: DRA_POLICY_TEXT,
    controllers: [...DEFAULT_CONTROLLERS, 'resourceclaim-controller'],
    progress: (l) => t.comment(l),
    ...(logFile ? { log: pino({ level: 'debug' }, pino.destination(logFile)) } : {}),
  });
  t.teardown(() => stack.stop());
  const adminKc = stack.client('admin');
  const admin = adminKc.makeApiClient(CoreV1Api);
  const objects = KubernetesObjectApi.makeApiClient(adminKc);
  const adminResource = adminKc.makeApiClient(ResourceV1Api);
  const client = (user: string): { core: CoreV1Api; resource: ResourceV1Api; kc: KubeConfig } => {
    const kc = stack.client(user);
    return { core: kc.makeApiClient(CoreV1Api), resource: kc.makeApiClient(ResourceV1Api), kc };
  };
  const alice = client('alice@acme.example');
  const bob = client('bob@acme.example');
  const carol = client('carol@acme.example');
  const create = (o: object) => objects.create(o as KubernetesObject);

  // NVIDIA's DeviceClasses (and one per MIG profile, mapped to nvidia.com/mig-<profile>).
  for (const c of [...NVIDIA_CLASSES, migProfileClass('1g.10gb'), migProfileClass('3g.40gb')]) await create(c);
  // The fleet: two DRA nodes with four H100s each, one with H100s split into MIG devices, a fraction node (device
  // plugin world) for the cross-pool checks. The DRA nodes advertise no GPU in allocatable.
  for (const name of ['dra-0', 'dra-1', 'dra-mig-0'])
    await createFakeNode(admin, draNode(name), { cpu: '64', memory: '512Gi', pods: '110' }, false);
  await createFakeNode(
    admin,
    {
      metadata: {
        name: 'h100-0',
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
    },
    { cpu: '96', memory: '1Ti', pods: '110' },
  );
  for (const name of ['dra-0', 'dra-1'])
    await create(
      nodeSlice(
        name,
        [0, 1, 2, 3].map((i) => gpuDevice(name, i)),
      ),
    );
  await create(
    nodeSlice(
      'dra-mig-0',
      [0, 1].flatMap((g) =>
        ['1g.10gb', '1g.10gb', '1g.10gb', '3g.40gb'].map((p, i) => migDevice('dra-mig-0', g, p, i)),
      ),
    ),
  );
  await alice.core.createNamespace({
    body: { metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } },
  });
  await alice.core.createNamespace({
    body: { metadata: { name: 'risk', labels: { 'tessera.io/tenant': 'payments-ml' } } },
  });
  await alice.core.createNamespace({ body: { metadata: { name: 'scratch' } } });
  const rbac = adminKc.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRole({
    body: {
      metadata: { name: 'dra-tenant' },
      rules: [
        { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
        {
          apiGroups: ['resource.k8s.io'],
          resources: ['resourceclaims', 'resourceclaimtemplates'],
          verbs: ['get', 'list', 'watch', 'create', 'delete'],
        },
      ],
    },
  });
  await rbac.createClusterRole({
    body: {
      metadata: { name: 'namespace-labeller' },
      rules: [{ apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'patch', 'update'] }],
    },
  });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: 'bob-labels-namespaces' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'namespace-labeller' },
      subjects: [{ kind: 'User', name: 'bob@acme.example', apiGroup: 'rbac.authorization.k8s.io' }],
    },
  });
  for (const [ns, user] of [
    ['vision', 'bob@acme.example'],
    ['risk', 'carol@acme.example'],
    ['scratch', 'bob@acme.example'],
  ] as const) {
    await admin.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'tenant' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'dra-tenant' },
        subjects: [{ kind: 'User', name: user, apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
  }
  await until('DRA and fraction nodes schedulable', async () => {
    const nodes = (await admin.listNode()).items;
    return ['dra-0', 'dra-1', 'dra-mig-0', 'h100-0'].every((n) =>
      nodes.some(
        (x) =>
          x.metadata?.name === n &&
          x.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') &&
          !(x.spec?.taints ?? []).some((tt) => tt.key.startsWith('node.kubernetes.io/')),
      ),
    );
  });

  /** Creates a pod, retrying while the webhook's cache has not seen a claim template created just before. */
  const createPod = async (api: CoreV1Api, pod: V1Pod): Promise<V1Pod> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        return await api.createNamespacedPod({ namespace: pod.metadata!.namespace!, body: pod });
      } catch (e) {
        if (!/has not seen it yet/.test(message(e)) || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  const bound = (api: CoreV1Api, namespace: string, name: string) =>
    until(`${namespace}/${name} bound`, async () => {
      const p = await api.readNamespacedPod({ namespace, name });
      return p.spec?.nodeName ? p : null;
    });
  const boundByExtender = async () => {
    const metric = await stack.extender!.metrics.binds.get();
    return metric.values.find((v) => v.labels.outcome === 'bound')?.value ?? 0;
  };

  await t.test(
    'a pod with a GPU claim template is bound by kube-scheduler through the extender, its claim allocated',
    async (t) => {
      await bob.resource.createNamespacedResourceClaimTemplate({
        namespace: 'vision',
        body: claimTemplate('one-h100', 'vision', [exactly('gpu', 'gpu.nvidia.com')]) as never,
      });
      const before = await boundByExtender();
      const created = await createPod(bob.core, claimPod('train', 'vision', 'one-h100'));
      t.equal(created.spec?.schedulerName, 'tessera-scheduler');
      t.equal(created.metadata?.annotations?.['tessera.io/pool'], 'dra-h100');
      t.equal(created.spec?.containers[0]?.resources?.limits?.['tessera.io/dra-claims'], '1');
      const pod = await bound(admin, 'vision', 'train');
      t.match(pod.spec!.nodeName, /^dra-[01]$/);
      t.ok(
        (await boundByExtender()) > before,
        'kube-scheduler sent the claim-only pod to the extender, which bound it',
      );
      const name = pod.status?.resourceClaimStatuses?.[0]?.resourceClaimName;
      t.ok(name, 'the resourceclaim controller generated the claim');
      const claim = await until('claim allocated', async () => {
        const c = await adminResource.readNamespacedResourceClaim({ namespace: 'vision', name: name! });
        return c.status?.allocation ? c : null;
      });
      t.match(claim.status!.allocation!.devices!.results, [
        { request: 'gpu', driver: 'gpu.nvidia.com', pool: pod.spec!.nodeName, device: /^gpu-[0-3]$/ },
      ]);
      const running = await until('train running', async () => {
        const p = await admin.readNamespacedPod({ namespace: 'vision', name: 'train' });
        return p.status?.phase === 'Running' ? p : null;
      });
      t.equal(running.status?.phase, 'Running');
    },
  );

  await t.test(
    'nvidia.com/gpu and MIG profiles on the DRA pool: KEP-5004 claims, bound through the extender',
    async (t) => {
      await createPod(
        bob.core,
        annotatedPod('two', 'vision', { 'tessera.io/pool': 'dra-h100', 'tessera.io/gpu-count': '2' }),
      );
      const two = await bound(admin, 'vision', 'two');
      t.equal(two.spec!.containers[0]!.resources!.limits!['nvidia.com/gpu'], '2');
      t.match(two.spec!.nodeName, /^dra-[01]$/);
      const special = await until('extended-resource claim allocated', async () => {
        const p = await admin.readNamespacedPod({ namespace: 'vision', name: 'two' });
        const name = p.status?.extendedResourceClaimStatus?.resourceClaimName;
        if (!name) return null;
        const c = await adminResource.readNamespacedResourceClaim({ namespace: 'vision', name });
        return c.status?.allocation ? c : null;
      });
      t.equal(special.status!.allocation!.devices!.results!.length, 2);
      t.equal(special.spec!.devices!.requests![0]!.exactly!.deviceClassName, 'gpu.nvidia.com');

      await createPod(
        bob.core,
        annotatedPod('small', 'vision', { 'tessera.io/pool': 'dra-h100', 'tessera.io/mig-profile': '1g.10gb' }),
      );
      const small = await bound(admin, 'vision', 'small');
      t.equal(small.spec!.nodeName, 'dra-mig-0', 'MIG devices only on the MIG node');
      t.equal(small.spec!.containers[0]!.resources!.limits!['nvidia.com/mig-1g.10gb'], '1');
      await bob.resource.createNamespacedResourceClaimTemplate({
        namespace: 'vision',
        body: claimTemplate('mig-3g', 'vision', [
          exactly('mig', 'mig.nvidia.com', { selectors: profileSelector('3g.40gb') }),
        ]) as never,
      });
      await createPod(bob.core, claimPod('mig-claim', 'vision', 'mig-3g'));
      const migClaim = await bound(admin, 'vision', 'mig-claim');
      t.equal(migClaim.spec!.nodeName, 'dra-mig-0');
    },
  );

  await t.test('denials reach the client through the API server', async (t) => {
    await carol.resource
      .createNamespacedResourceClaimTemplate({
        namespace: 'risk',
        body: claimTemplate('one-h100', 'risk', [exactly('gpu', 'gpu.nvidia.com')]) as never,
      })
      .then(
        () => t.fail('payments-ml has no dra pool'),
        (e) =>
          t.match(
            message(e),
            /ResourceClaimTemplate one-h100: request gpu names DeviceClass gpu.nvidia.com, a GPU class that no pool of tenant payments-ml lists/,
          ),
      );
    await carol.resource
      .createNamespacedResourceClaim({
        namespace: 'risk',
        body: {
          metadata: { name: 'four' },
          spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: 'gpu.nvidia.com', count: 4 } }] } },
        },
      })
      .then(
        () => t.fail('four GPUs by claim in a tenant without the pool'),
        (e) => t.match(message(e), /ResourceClaim four: request gpu names DeviceClass gpu.nvidia.com/),
      );
    await carol.core
      .createNamespacedPod({
        namespace: 'risk',
        body: {
          metadata: { name: 'ext', namespace: 'risk', labels },
          spec: {
            containers: [
              {
                name: 'main',
                image: 'registry.eu.acme.example/serve:1',
                resources: { limits: { 'deviceclass.resource.kubernetes.io/gpu.nvidia.com': '1' } },
              },
            ],
          },
        },
      })
      .then(
        () => t.fail('a DRA-backed extended resource is a GPU claim too'),
        (e) =>
          t.match(
            message(e),
            /extended resource deviceclass.resource.kubernetes.io\/gpu.nvidia.com \(DeviceClass gpu.nvidia.com\)/,
          ),
      );
    // Kubernetes itself refuses adminAccess outside namespaces labelled for it; in one a platform admin labelled,
    // Tessera still denies it to tenants.
    const adminAccess = (name: string) =>
      bob.resource.createNamespacedResourceClaimTemplate({
        namespace: 'vision',
        body: claimTemplate(name, 'vision', [exactly('gpu', 'gpu.nvidia.com', { adminAccess: true })]) as never,
      });
    await adminAccess('watch').then(
      () => t.fail('adminAccess without the namespace label'),
      (e) => t.match(message(e), /admin-access|adminAccess/),
    );
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    await alice.core.patchNamespace(
      { name: 'vision', body: { metadata: { labels: { 'resource.kubernetes.io/admin-access': 'true' } } } },
      merge,
    );
    await until(
      'the webhook sees the label',
      async () => {
        try {
          await adminAccess('probe');
          return false;
        } catch (e) {
          return /asks for adminAccess to gpu.nvidia.com devices/.test(message(e));
        }
      },
      20_000,
    );
    await adminAccess('watch').then(
      () => t.fail('adminAccess in a labelled tenant namespace'),
      (e) =>
        t.match(
          message(e),
          /\[tessera\/tenancy\] ResourceClaimTemplate watch: request gpu asks for adminAccess to gpu.nvidia.com devices, which reaches GPUs that other tenants' pods use/,
        ),
    );
    await alice.core.patchNamespace(
      { name: 'vision', body: { metadata: { labels: { 'resource.kubernetes.io/admin-access': null } } } },
      merge,
    );
    await bob.resource
      .createNamespacedResourceClaim({
        namespace: 'scratch',
        body: {
          metadata: { name: 'stray' },
          spec: { devices: { requests: [{ name: 'gpu', exactly: { deviceClassName: 'mig.nvidia.com' } }] } },
        },
      })
      .then(
        () => t.fail('no tenant, no GPU claims'),
        (e) => t.match(message(e), /namespace scratch has no tessera.io\/tenant label/),
      );
    await bob.core
      .patchNamespace(
        { name: 'vision', body: { metadata: { labels: { 'resource.kubernetes.io/admin-access': 'true' } } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )
      .then(
        () => t.fail('a tenant user labels the namespace for admin access'),
        (e) => t.match(message(e), /may not set resource.kubernetes.io\/admin-access=true on namespace vision/),
      );
    await createPod(
      bob.core,
      annotatedPod('quarter', 'vision', { 'tessera.io/pool': 'dra-h100', 'tessera.io/gpu-fraction': '0.25' }),
    ).then(
      () => t.fail('a fraction on the dra pool'),
      (e) => t.match(message(e), /none of them lets several claims share one device, so it cannot give 0.25 of a GPU/),
    );
  });

  await t.test('quota and tenant isolation hold across device-plugin and DRA pools at once', async (t) => {
    // research holds 1 (train) + 2 (two) + 1/7 (small) + 3/7 (mig-claim) on the DRA pool; add fractions on h100-0.
    await createPod(bob.core, annotatedPod('half', 'vision', { 'tessera.io/gpu-fraction': '0.5' }));
    await createPod(
      carol.core,
      annotatedPod(
        'pay-half',
        'risk',
        { 'tessera.io/gpu-fraction': '0.5', 'tessera.io/pool': 'shared-h100' },
        'registry.eu.acme.example/serve:1',
      ),
    );
    const half = await bound(admin, 'vision', 'half');
    const payHalf = await bound(admin, 'risk', 'pay-half');
    const gpuOf = (p: V1Pod) => JSON.parse(p.metadata!.annotations!['tessera.io/assignment']!).gpus[0].index;
    t.equal(half.spec!.nodeName, 'h100-0');
    t.not(gpuOf(half), gpuOf(payHalf), 'payments-ml (same-tenant) never shares a GPU with research');
    await createPod(
      bob.core,
      annotatedPod('six', 'vision', { 'tessera.io/pool': 'shared-h100', 'tessera.io/gpu-count': '6' }),
    );
    await bound(admin, 'vision', 'six');
    // 1 + 2 + 1/7 + 3/7 + 0.5 + 6 = 10.07 held; two more GPUs by claim exceed the quota of 12.
    await bob.resource.createNamespacedResourceClaimTemplate({
      namespace: 'vision',
      body: claimTemplate('two-h100', 'vision', [exactly('gpu', 'gpu.nvidia.com', { count: 2 })]) as never,
    });
    await createPod(bob.core, claimPod('over', 'vision', 'two-h100')).then(
      () => t.fail('over quota'),
      (e) =>
        t.match(
          message(e),
          /tenant research has a quota of 12 GPU-equivalents; 10.071 are held by 6 pod\(s\) and this pod needs 2/,
        ),
    );
    await bob.core.deleteNamespacedPod({ namespace: 'vision', name: 'train', gracePeriodSeconds: 0 });
    await until('train gone', async () =>
      (await admin.listNamespacedPod({ namespace: 'vision' })).items.every((p) => p.metadata?.name !== 'train'),
    );
    await createPod(bob.core, claimPod('fits', 'vision', 'one-h100'));
    const fits = await bound(admin, 'vision', 'fits');
    t.match(fits.spec!.nodeName, /^dra-[01]$/, 'a freed DRA GPU gives its quota back');
  });
});
