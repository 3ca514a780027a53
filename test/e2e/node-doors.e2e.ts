import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  AppsV1Api,
  CoreV1Api,
  NodeV1Api,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { createFakeNode, startStack, type Stack } from './stack.ts';
import { until, apiErrorMessage as message } from '../fixtures/waiting.ts';

// The node-side GPU doors through a real kube-apiserver: device-list volume mounts and device-injection annotations
// are denied with their messages (pods, ephemeral containers, an UPDATE, a Deployment), the drift audit reports a pod
// that has one where the webhook does not look, and the fraction-pool smoke-test Job passes Tessera as a tenant
// submits it (server-side dry run), its pod bound by the extender with the wiring its check reads.

const POLICY = readFileSync(new URL('../../../shared/examples/policy.yaml', import.meta.url), 'utf8');
const SMOKE_TEST = fileURLToPath(new URL('../../manifests/fraction-nodes/smoke-test-job.yaml', import.meta.url));
const BOB = 'bob@acme.example';
const WIRING = "metadata.annotations['tessera.io/visible-devices']";

/** What deniedWith needs of a tap test. */
interface Asserts {
  fail(message: string): unknown;
  match(found: unknown, wanted: RegExp, message: string): unknown;
}

const labels = { team: 'vision', 'cost-center': '1234' };
const basePod = (name: string, namespace: string, annotations: Record<string, string> = {}): V1Pod => ({
  metadata: { name, namespace, labels, annotations },
  spec: {
    containers: [
      { name: 'main', image: 'registry.example/train:1', resources: { requests: { cpu: '100m', memory: '64Mi' } } },
    ],
  },
});
/** NVIDIA's kind demo's way to every GPU of a node: the host's /dev/null mounted at a device-list path. */
const devNull = { name: 'gpus', hostPath: { path: '/dev/null' } };
function mountedPod(name: string, namespace: string, mountPath: string, annotations: Record<string, string> = {}) {
  const p = basePod(name, namespace, annotations);
  p.spec!.volumes = [devNull];
  p.spec!.containers[0]!.volumeMounts = [{ name: 'gpus', mountPath }];
  return p;
}

t.test('the node-side GPU doors on a real kube-apiserver', async (t) => {
  const stack: Stack = await startStack({ policy: POLICY, progress: (l) => t.comment(l) });
  t.teardown(() => stack.stop());
  const adminKc = stack.client('admin');
  const admin = adminKc.makeApiClient(CoreV1Api);
  const alice = stack.client('alice@acme.example').makeApiClient(CoreV1Api);
  const bobKc = stack.client(BOB);
  const bob = bobKc.makeApiClient(CoreV1Api);

  // One fraction node, the `nvidia` RuntimeClass (GPU Operator installs create it), tenant and no-tenant namespaces.
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
  await adminKc
    .makeApiClient(NodeV1Api)
    .createRuntimeClass({ body: { metadata: { name: 'nvidia' }, handler: 'nvidia' } });
  await alice.createNamespace({ body: { metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } } });
  await alice.createNamespace({ body: { metadata: { name: 'scratch' } } });
  const rbac = adminKc.makeApiClient(RbacAuthorizationV1Api);
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
  for (const ns of ['vision', 'scratch', 'kube-system']) {
    await admin
      .createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } })
      .catch(() => {});
  }
  for (const ns of ['vision', 'scratch']) {
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'bob-edit' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'tenant-user' },
        subjects: [{ kind: 'User', name: BOB, apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
  }
  const deniedWith = (t: Asserts, what: string, attempt: Promise<unknown>, expected: RegExp) =>
    attempt.then(
      () => t.fail(`${what}: should be denied`),
      (e) => t.match(message(e), expected, `${what}: denied by Tessera with its message`),
    );

  await t.test('device-list mounts are denied at the API server', async (t) => {
    await deniedWith(
      t,
      'a fraction pod mounting /dev/null at /var/run/nvidia-container-devices/all',
      bob.createNamespacedPod({
        namespace: 'vision',
        body: mountedPod('all-gpus', 'vision', '/var/run/nvidia-container-devices/all', {
          'tessera.io/gpu-fraction': '0.1',
        }),
      }),
      /Tessera denied this request \(1 problem\):\\n- \[tessera\/accounting\] container main mounts volume gpus at \/var\/run\/nvidia-container-devices\/all, under \/var\/run\/nvidia-container-devices; the NVIDIA container runtime reads mounts there as a list of GPUs to expose, behind Tessera's back\. Remove the mount and ask for GPUs with tessera\.io\/gpu-fraction, tessera\.io\/gpu-count or nvidia\.com\/gpu instead/,
    );
    const emptyDir = basePod('scratch-gpus', 'scratch');
    emptyDir.spec!.volumes = [{ name: 'scratch', emptyDir: {} }];
    emptyDir.spec!.containers[0]!.volumeMounts = [
      { name: 'scratch', mountPath: '/var/run/../run/nvidia-container-devices/0' },
    ];
    await deniedWith(
      t,
      'an emptyDir at a ..-variant of the path, in a namespace without a tenant',
      bob.createNamespacedPod({ namespace: 'scratch', body: emptyDir }),
      /container main mounts volume scratch at \/var\/run\/\.\.\/run\/nvidia-container-devices\/0 \(\/var\/run\/nvidia-container-devices\/0\)/,
    );
    const sidecar = basePod('sidecar', 'vision');
    sidecar.spec!.volumes = [devNull];
    sidecar.spec!.initContainers = [
      {
        name: 'proxy',
        image: 'registry.example/proxy:1',
        restartPolicy: 'Always',
        volumeMounts: [{ name: 'gpus', mountPath: '/run/nvidia-container-devices/all' }],
      },
    ];
    await deniedWith(
      t,
      'a sidecar mounting under /run/nvidia-container-devices',
      bob.createNamespacedPod({ namespace: 'vision', body: sidecar }),
      /container proxy mounts volume gpus at \/run\/nvidia-container-devices\/all, under \/run\/nvidia-container-devices, which is \/var\/run\/nvidia-container-devices in most images/,
    );

    // A pod may hold the host's /dev/null as a volume; an ephemeral container may not mount it at a device-list path.
    const holder = basePod('holder', 'vision');
    holder.spec!.volumes = [devNull];
    await bob.createNamespacedPod({ namespace: 'vision', body: holder });
    const live = await bob.readNamespacedPod({ name: 'holder', namespace: 'vision' });
    live.spec!.ephemeralContainers = [
      {
        name: 'debug',
        image: 'registry.example/busybox:1',
        volumeMounts: [{ name: 'gpus', mountPath: '/var/run/nvidia-container-devices/all' }],
      },
    ];
    await deniedWith(
      t,
      'an ephemeral container',
      bob.replaceNamespacedPodEphemeralcontainers({ name: 'holder', namespace: 'vision', body: live }),
      /\[tessera\/accounting\] container debug mounts volume gpus at \/var\/run\/nvidia-container-devices\/all/,
    );
  });

  await t.test('device-injection annotations are denied, also when added to a running pod', async (t) => {
    await deniedWith(
      t,
      "NVIDIA's NRI plugin annotation",
      bob.createNamespacedPod({
        namespace: 'vision',
        body: basePod('nri', 'vision', { 'nvidia.cdi.k8s.io/container.main': 'nvidia.com/gpu=all' }),
      }),
      /\[tessera\/accounting\] annotation nvidia\.cdi\.k8s\.io\/container\.main asks the NVIDIA container toolkit's NRI plugin to inject devices into the pod's containers, which can hand it any GPU of the node behind Tessera's back\. Remove the annotation/,
    );
    await deniedWith(
      t,
      'CDI and NRI device-injector annotations together',
      bob.createNamespacedPod({
        namespace: 'scratch',
        body: basePod('cdi', 'scratch', {
          'cdi.k8s.io/grab': 'nvidia.com/gpu=all',
          'devices.nri.io/pod': '- path: /dev/nvidia0\n  type: c\n  major: 195\n  minor: 0',
        }),
      }),
      /\(2 problems\):\\n- \[tessera\/accounting\] annotation cdi\.k8s\.io\/grab asks a CDI-aware container runtime[^"]*\\n- \[tessera\/accounting\] annotation devices\.nri\.io\/pod asks the NRI device injector/,
    );
    await deniedWith(
      t,
      'an annotation added by UPDATE (the injector would apply it at the next container start)',
      bob.patchNamespacedPod(
        {
          name: 'holder',
          namespace: 'vision',
          body: { metadata: { annotations: { 'mounts.noderesource.dev/container.main': '- source: /dev/null' } } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
      /annotation mounts\.noderesource\.dev\/container\.main asks the NRI device injector to add mounts/,
    );
  });

  await t.test('a workload template with a door is denied before any pod exists', async (t) => {
    const template = mountedPod('x', 'vision', '/var/run/nvidia-container-devices/all');
    await deniedWith(
      t,
      'Deployment',
      bobKc.makeApiClient(AppsV1Api).createNamespacedDeployment({
        namespace: 'vision',
        body: {
          metadata: { name: 'sneaky', namespace: 'vision' },
          spec: {
            selector: { matchLabels: { app: 'sneaky' } },
            template: { metadata: { labels: { ...labels, app: 'sneaky' } }, spec: template.spec },
          },
        },
      }),
      /\[tessera\/accounting\] Deployment spec\.template: container main mounts volume gpus at \/var\/run\/nvidia-container-devices\/all/,
    );
  });

  await t.test('the drift audit reports a running pod with a door where the webhook does not look', async (t) => {
    // kube-system is outside the webhook's namespaceSelector: nothing stops an admin's pod there.
    await admin.createNamespacedPod({
      namespace: 'kube-system',
      body: mountedPod('legacy-agent', 'kube-system', '/var/run/nvidia-container-devices/all'),
    });
    const found = await until(
      'tessera_drift_pods{rule="tessera/accounting"}',
      async () => {
        const metric = await stack.webhook!.metrics.driftPods.get();
        return metric.values.find((v) => v.labels.rule === 'tessera/accounting' && v.labels.tenant === '-');
      },
      30_000,
    );
    t.match(found, { labels: { action: 'enforce' }, value: 1 });
  });

  await t.test('the fraction-pool smoke-test Job passes Tessera as a tenant submits it', async (t) => {
    // Asynchronously: the webhook answers from this very process.
    const { stdout: out } = await promisify(execFile)(
      stack.cluster.binaries.kubectl,
      ['--kubeconfig', stack.cluster.kubeconfigFor(BOB), '-n', 'vision', 'apply', '--dry-run=server', '-f', SMOKE_TEST],
      { encoding: 'utf8' },
    );
    t.match(out, /job\.batch\/tessera-fraction-smoke-test created \(server dry run\)/);

    // No Job controller runs here, so its pod is created as the Job controller would: from the template.
    const job = parseYaml(readFileSync(SMOKE_TEST, 'utf8')) as { spec: { template: V1Pod } };
    const body: V1Pod = {
      ...job.spec.template,
      metadata: { ...job.spec.template.metadata, name: 'smoke', namespace: 'vision' },
    };
    await bob.createNamespacedPod({ namespace: 'vision', body });
    const bound = await until('the smoke-test pod bound', async () => {
      const p = await bob.readNamespacedPod({ name: 'smoke', namespace: 'vision' });
      return p.spec?.nodeName ? p : null;
    });
    t.equal(bound.spec!.nodeName, 'h100-0');
    t.equal(bound.spec!.runtimeClassName, 'nvidia');
    const assigned = bound.metadata!.annotations!['tessera.io/visible-devices'];
    t.match(assigned, /^[0-7]$/, 'the extender assigned one GPU');
    t.match(JSON.parse(bound.metadata!.annotations!['tessera.io/assignment']!), {
      node: 'h100-0',
      gpus: [{ index: Number(assigned), milli: 100 }],
    });
    const env = bound.spec!.containers[0]!.env ?? [];
    for (const name of ['TESSERA_ASSIGNED_GPUS', 'NVIDIA_VISIBLE_DEVICES']) {
      t.match(
        env.find((e) => e.name === name),
        { valueFrom: { fieldRef: { fieldPath: WIRING } } },
        `${name} reads tessera.io/visible-devices, so the check compares what the runtime was told with the assignment`,
      );
    }
  });
});
