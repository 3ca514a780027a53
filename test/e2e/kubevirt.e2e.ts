// KubeVirt GPU VMs on the real control plane (kube-apiserver, kube-scheduler with Tessera's extender, KWOK nodes),
// with ../shared/examples/vm/policy.yaml. KubeVirt itself is not run: its real VirtualMachineInstance and
// VirtualMachine CRDs are installed, and a STAND-IN for virt-controller (test/fixtures/kubevirt-controller.ts) creates the VMIs of
// running VMs, the virt-launcher pods and a live-migration target as virt-controller's template code does, under its
// service account. KWOK nodes advertise what NVIDIA's KubeVirt GPU device plugin advertises: passthrough H100s under
// their PCI-derived name and L40S vGPU profiles, plus devices no pool maps (T4 vGPUs, AMD GPUs). The promises: a VM's
// GPUs count toward its tenant's quota and pool like a pod's, at VMI/VM admission and at the launcher pod; it is
// placed on its pool's nodes; a migration target does not double-charge; no accelerator reaches a tenant unaccounted.

import { readFileSync } from 'node:fs';
import t from 'tap';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api, type V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import {
  grantKubevirtController,
  gpuVmi,
  installKubevirtCrds,
  VIRT_CONTROLLER_IDENTITY,
  type Vmi,
  VirtControllerStandIn,
  vmOf,
} from '../fixtures/kubevirt-controller.ts';
import { apiErrorMessage, until } from '../fixtures/waiting.ts';
import { createFakeNode, startStack, type Stack, waitForNodesReady } from './stack.ts';

const POLICY = readFileSync(new URL('../../../shared/examples/vm/policy.yaml', import.meta.url), 'utf8');
const H100 = 'nvidia.com/GH100_H100_SXM5_80GB';
const L40S_12Q = 'nvidia.com/NVIDIA_L40S-12Q';
const L40S_24Q = 'nvidia.com/NVIDIA_L40S-24Q';
const T4_1Q = 'nvidia.com/GRID_T4-1Q';
const KVM = { 'devices.kubevirt.io/kvm': '1k', 'devices.kubevirt.io/tun': '1k', 'devices.kubevirt.io/vhost-net': '1k' };
const BASE = { cpu: '96', memory: '1Ti', pods: '110', ...KVM };

/** A KubeVirt node of a pool: GPU Operator's workload-config label, KubeVirt's schedulable label, the pool's taint. */
const vmNode = (name: string, pool: string | null, workload: string, product: string) => ({
  metadata: {
    name,
    labels: {
      ...(pool ? { 'tessera.io/pool': pool } : {}),
      'nvidia.com/gpu.workload.config': workload,
      'nvidia.com/gpu.product': product,
      'kubevirt.io/schedulable': 'true',
    },
  },
  ...(pool ? { spec: { taints: [{ key: 'tessera.io/pool', value: pool, effect: 'NoSchedule' }] } } : {}),
});

t.test('KubeVirt GPU VMs through Tessera, with a stand-in for virt-controller', async (t) => {
  const logFile = process.env.TESSERA_E2E_LOG;
  const stack: Stack = await startStack({
    policy: POLICY,
    progress: (l) => t.comment(l),
    identities: [VIRT_CONTROLLER_IDENTITY],
    ...(logFile ? { log: pino({ level: 'debug' }, pino.destination(logFile)) } : {}),
  });
  t.teardown(() => stack.stop());
  const adminKc = stack.client('admin');
  const admin = adminKc.makeApiClient(CoreV1Api);
  const alice = stack.client('alice@acme.example').makeApiClient(CoreV1Api);
  const bobKc = stack.client('bob@acme.example');
  const bobVms = bobKc.makeApiClient(CustomObjectsApi);
  const bob = bobKc.makeApiClient(CoreV1Api);
  await installKubevirtCrds(adminKc);
  await grantKubevirtController(adminKc);
  const controller = new VirtControllerStandIn(stack.client(VIRT_CONTROLLER_IDENTITY.user));

  for (const n of ['vm-h100-0', 'vm-h100-1', 'vm-h100-2'])
    await createFakeNode(
      admin,
      vmNode(n, 'vm-h100', 'vm-passthrough', 'NVIDIA-H100-80GB-HBM3'),
      { ...BASE, [H100]: '8' },
      false,
    );
  // NVIDIA's vGPU Device Manager gives every GPU of a node one profile: two L40S as 12Q (4 each), two as 24Q (2 each).
  await createFakeNode(
    admin,
    vmNode('vgpu-12q-0', 'vm-l40s-vgpu', 'vm-vgpu', 'NVIDIA-L40S'),
    { ...BASE, [L40S_12Q]: '8' },
    false,
  );
  await createFakeNode(
    admin,
    vmNode('vgpu-24q-0', 'vm-l40s-vgpu', 'vm-vgpu', 'NVIDIA-L40S'),
    { ...BASE, [L40S_24Q]: '4' },
    false,
  );
  // Devices no pool maps.
  await createFakeNode(admin, vmNode('t4-vgpu-0', null, 'vm-vgpu', 'Tesla-T4'), { ...BASE, [T4_1Q]: '16' }, false);
  await createFakeNode(
    admin,
    vmNode('amd-0', null, 'container', 'AMD-Instinct-MI300X'),
    { ...BASE, 'amd.com/gpu': '8' },
    false,
  );
  await alice.createNamespace({ body: { metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } } });
  await alice.createNamespace({ body: { metadata: { name: 'risk', labels: { 'tessera.io/tenant': 'payments-ml' } } } });
  await alice.createNamespace({ body: { metadata: { name: 'scratch' } } });
  const rbac = adminKc.makeApiClient(RbacAuthorizationV1Api);
  await rbac.createClusterRole({
    body: {
      metadata: { name: 'vm-user' },
      rules: [
        { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
        { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list', 'create', 'delete'] },
        { apiGroups: ['kubevirt.io'], resources: ['virtualmachineinstances', 'virtualmachines'], verbs: ['*'] },
      ],
    },
  });
  for (const ns of ['vision', 'risk', 'scratch']) {
    await admin.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'bob' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'vm-user' },
        subjects: [{ kind: 'User', name: 'bob@acme.example', apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
  }
  const nodes = (await admin.listNode()).items.map((n) => n.metadata!.name!);
  await waitForNodesReady(admin, nodes);

  /** A user creates a VMI (kubectl apply): the refusal's message, or null. */
  const createVmi = async (vmi: Vmi): Promise<string | null> =>
    bobVms
      .createNamespacedCustomObject({
        group: 'kubevirt.io',
        version: 'v1',
        namespace: vmi.metadata.namespace,
        plural: 'virtualmachineinstances',
        body: vmi,
      })
      .then(() => null)
      .catch((e: unknown) => apiErrorMessage(e));
  const createVm = async (vm: object, namespace: string): Promise<string | null> =>
    bobVms
      .createNamespacedCustomObject({
        group: 'kubevirt.io',
        version: 'v1',
        namespace,
        plural: 'virtualmachines',
        body: vm,
      })
      .then(() => null)
      .catch((e: unknown) => apiErrorMessage(e));
  const bound = (pod: V1Pod) =>
    until(`${pod.metadata!.name} bound`, async () => {
      const p = await admin.readNamespacedPod({ namespace: pod.metadata!.namespace!, name: pod.metadata!.name! });
      return p.spec?.nodeName ? p : null;
    });
  /** Starts a VMI the user created: the stand-in's launcher pod, which must be admitted. */
  const launch = async (namespace: string, name: string): Promise<V1Pod> => {
    const r = await controller.launch(namespace, name);
    if (r.error !== null) throw new Error(r.error);
    return r.pod!;
  };

  await t.test("the VMI and VM CRDs are KubeVirt's real schemas", async (t) => {
    const bad = gpuVmi('bad', 'vision', [H100]) as unknown as { spec: { domain: { devices: unknown } } };
    bad.spec.domain.devices = { gpus: 'two H100s, please' };
    t.match(await createVmi(bad as unknown as Vmi), /spec\.domain\.devices\.gpus|Invalid/, 'gpus must be a list');
  });

  let passthroughPod: V1Pod;
  await t.test(
    'a passthrough VM is admitted, pinned to its pool and placed by the scheduler and extender',
    async (t) => {
      t.equal(await createVmi(gpuVmi('gpu-vm', 'vision', [H100, H100])), null, 'VMI admitted');
      passthroughPod = await launch('vision', 'gpu-vm');
      const spec = passthroughPod.spec!;
      t.same(spec.containers[0]!.resources!.limits![H100], '2', 'the launcher pod carries the two devices');
      t.equal(passthroughPod.metadata!.labels!['kubevirt.io'], 'virt-launcher');
      t.equal(passthroughPod.metadata!.labels!['tessera.io/tenant'], 'research');
      t.equal(spec.schedulerName, 'tessera-scheduler', "moved to Tessera's scheduler");
      t.ok(
        spec.tolerations?.some((x) => x.key === 'tessera.io/pool' && x.value === 'vm-h100'),
        "the pool's toleration",
      );
      t.match(JSON.stringify(spec.affinity ?? spec.nodeSelector), /vm-h100/, 'pinned to pool vm-h100');
      const p = await bound(passthroughPod);
      t.match(p.spec!.nodeName, /^vm-h100-/);
    },
  );

  await t.test('a vGPU VM is placed on a node of its profile', async (t) => {
    t.equal(await createVmi(gpuVmi('vgpu-vm', 'vision', [L40S_12Q, L40S_12Q])), null);
    const p = await bound(await launch('vision', 'vgpu-vm'));
    t.equal(p.spec!.nodeName, 'vgpu-12q-0');
  });

  await t.test('a VM on a vgpu pool asking a fraction gets the smallest profile that meets it', async (t) => {
    t.equal(
      await createVmi({
        ...gpuVmi('frac-vm', 'vision', []),
        metadata: {
          name: 'frac-vm',
          namespace: 'vision',
          annotations: { 'tessera.io/gpu-fraction': '0.4', 'tessera.io/pool': 'vm-l40s-vgpu' },
        },
      }),
      null,
    );
    const vmi = await controller.readVmi('vision', 'frac-vm');
    const pod = await launch('vision', 'frac-vm');
    const devices = [...(vmi.spec.domain.devices.gpus ?? []), ...(vmi.spec.domain.devices.hostDevices ?? [])].map(
      (d) => d.deviceName,
    );
    const limits = pod.spec!.containers[0]!.resources!.limits!;
    t.ok(
      devices.includes(L40S_24Q) || limits[L40S_24Q] === '1',
      '0.4 of an L40S is one 24Q vGPU (a half), the smallest listed profile that meets it',
    );
    t.notOk(limits[L40S_12Q], 'not a 12Q (a quarter)');
  });

  // research: quota 12, maxGpusPerPod 8. Held so far: 2 (gpu-vm) + 0.5 (vgpu-vm) + 0.5 (frac-vm).
  await t.test("VM GPUs count toward the tenant's quota and per-pod limit in GPU-equivalents", async (t) => {
    t.match(await createVmi(gpuVmi('huge-vm', 'vision', Array(9).fill(H100))), /at most 8 per pod/);
    t.equal(await createVmi(gpuVmi('big-vm', 'vision', Array(8).fill(H100))), null, '3 + 8 = 11 of 12');
    await bound(await launch('vision', 'big-vm'));
    const over = await createVmi(gpuVmi('over-vm', 'vision', [H100, H100]));
    t.match(over, /quota/, 'a VMI beyond the quota is denied at its own admission, synchronously');
    t.comment(over ?? '');
    // Admitted while it fitted, launched when it no longer does: the launcher pod is the ledger.
    t.equal(await createVmi(gpuVmi('late-vm', 'vision', [H100])), null, '11 + 1 fits');
    t.equal(await createVmi(gpuVmi('filler-vm', 'vision', [L40S_12Q, L40S_12Q])), null, '11 + 0.5 fits');
    const filler = await launch('vision', 'filler-vm');
    const late = await controller.launch('vision', 'late-vm');
    t.match(late.error, /^Error creating pod: .*quota/s, 'at 11.5, the launcher pod of late-vm is refused');
    t.comment(late.error ?? '');
    const events = await admin.listNamespacedEvent({ namespace: 'vision' });
    t.ok(
      events.items.some((e) => e.involvedObject?.name === 'late-vm' && e.reason === 'FailedCreate'),
      'reported as FailedCreate on the VMI',
    );
    await admin.deleteNamespacedPod({ namespace: 'vision', name: filler.metadata!.name!, gracePeriodSeconds: 0 });
    await until('filler-vm launcher gone', async () =>
      admin
        .readNamespacedPod({ namespace: 'vision', name: filler.metadata!.name! })
        .then(() => null)
        .catch(() => true),
    );
  });

  await t.test('a live-migration target pod does not charge its VM twice', async (t) => {
    // Held: 11 of 12. The target of gpu-vm (2 H100s) would make 13 if it counted again.
    const r = await controller.migrationTarget('vision', 'gpu-vm', 'migration-uid-1');
    t.equal(r.error, null, 'admitted at 11 of 12');
    t.equal(r.pod!.metadata!.labels!['kubevirt.io/migrationJobUID'], 'migration-uid-1');
    const p = await bound(r.pod!);
    t.match(p.spec!.nodeName, /^vm-h100-/);
    t.not(p.spec!.nodeName, (await bound(passthroughPod)).spec!.nodeName, 'on another node than its source');
  });

  await t.test(
    'a VirtualMachine is checked at its own admission; a running one becomes a placed launcher',
    async (t) => {
      t.match(
        await createVm(vmOf(gpuVmi('vm-huge', 'vision', Array(9).fill(H100))), 'vision'),
        /at most 8 per pod/,
        'the template is checked when the VM is created',
      );
      t.match(await createVm(vmOf(gpuVmi('vm-t4', 'vision', [T4_1Q])), 'vision'), /GRID_T4-1Q/);
      t.match(await createVm(vmOf(gpuVmi('vm-scratch', 'scratch', [H100])), 'scratch'), /no tessera\.io\/tenant label/);
      t.match(await createVm(vmOf(gpuVmi('vm-risk', 'risk', [H100])), 'risk'), /vm-h100|pool/, 'only its own pools');
      t.equal(await createVm(vmOf(gpuVmi('vm-small', 'vision', [L40S_24Q])), 'vision'), null);
      const started = await controller.startVm('vision', 'vm-small');
      t.equal(started.error, null, "the VM's VMI is admitted");
      const p = await bound(await launch('vision', 'vm-small'));
      t.equal(p.spec!.nodeName, 'vgpu-24q-0');
    },
  );

  await t.test('a namespace without a tenant gets no VM GPUs, at the VMI and at the launcher pod', async (t) => {
    t.match(await createVmi(gpuVmi('x', 'scratch', [H100, H100, H100, H100])), /no tessera\.io\/tenant label/);
    const r = await controller.launchUnchecked(gpuVmi('x', 'scratch', [H100, H100, H100, H100]));
    t.match(r.error, /no tessera\.io\/tenant label/);
  });

  await t.test('accelerators no pool maps are denied in every namespace, with how to map them', async (t) => {
    const t4 = await createVmi(gpuVmi('t4-vm', 'vision', Array(30).fill(T4_1Q)));
    t.match(t4, /nvidia\.com\/GRID_T4-1Q/);
    t.match(t4, /deviceResources|pool/, 'the denial says how to map it in a pool');
    t.match((await controller.launchUnchecked(gpuVmi('t4-vm', 'vision', [T4_1Q]))).error, /GRID_T4-1Q/);
    t.match(await createVmi(gpuVmi('amd-vm', 'vision', ['amd.com/gpu'], { as: 'hostDevices' })), /amd\.com\/gpu/);
    for (const ns of ['vision', 'scratch', 'risk']) {
      const err = await bob
        .createNamespacedPod({
          namespace: ns,
          body: {
            metadata: { name: 'amd', labels: { team: 'vision', 'cost-center': '1234' } },
            spec: {
              containers: [
                { name: 'main', image: 'registry.example/app:1', resources: { limits: { 'amd.com/gpu': '1' } } },
              ],
            },
          },
        })
        .then(() => null)
        .catch((e: unknown) => apiErrorMessage(e));
      t.match(err, /amd\.com\/gpu/, `an amd.com/gpu pod is denied in ${ns}`);
    }
    const deploy = await bobKc
      .makeApiClient(AppsV1Api)
      .createNamespacedDeployment({
        namespace: 'vision',
        body: {
          metadata: { name: 'gaudi' },
          spec: {
            selector: { matchLabels: { app: 'gaudi' } },
            template: {
              metadata: { labels: { app: 'gaudi', team: 'vision', 'cost-center': '1234' } },
              spec: {
                containers: [
                  { name: 'main', image: 'registry.example/app:1', resources: { limits: { 'habana.ai/gaudi': '1' } } },
                ],
              },
            },
          },
        },
      })
      .then(() => null)
      .catch((e: unknown) => apiErrorMessage(e));
    t.match(deploy, /habana\.ai\/gaudi/, 'and in workload templates');
  });
});
