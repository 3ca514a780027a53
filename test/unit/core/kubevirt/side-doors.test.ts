// The four side doors of issue 18, as a new user met them with `tessera policy apply`: virt-launcher pods created by
// KubeVirt's controller with passthrough H100s, vGPUs and another vendor's GPU. Each is now denied with a message
// that says what to do; the VM cases the vm policy allows are admitted and pinned like any GPU pod.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { staticClusterView } from '../../../../core/admission/cluster-view.ts';
import { runAdmission } from '../../../../core/admission/pipeline.ts';
import type { KubePod } from '../../../../core/kube-objects.ts';
import { equivalentsOfPod } from '../../../../core/pools/equivalents.ts';
import { CONFIG, examplePolicy, NAMESPACES, podRequest } from '../../../fixtures/admission.ts';
import { KUBEVIRT_CONTROLLER, launcherPod } from '../../../fixtures/kubevirt.ts';
import { pod } from '../../../fixtures/pods.ts';

const VM_POLICY = examplePolicy(
  readFileSync(new URL('../../../../../shared/examples/vm/policy.yaml', import.meta.url), 'utf8'),
);
const BASE_POLICY = examplePolicy();
const H100 = 'nvidia.com/GH100_H100_SXM5_80GB';

function admit(p: KubePod, policy = VM_POLICY, running: KubePod[] = []) {
  const result = runAdmission(
    podRequest(p, { user: KUBEVIRT_CONTROLLER }),
    policy,
    staticClusterView(NAMESPACES, running),
    CONFIG,
  );
  return { ...result, message: result.response.status?.message ?? '' };
}

t.test('20 passthrough H100s in research (quota 12, at most 8 per pod): denied', async (t) => {
  const r = admit(launcherPod({ devices: { [H100]: 20 } }));
  t.equal(r.response.allowed, false);
  t.match(r.message, /asks for 20 GPU-equivalents; tenant research allows at most 8 per pod/);
  t.match(
    r.message,
    /tenant research has a quota of 12 GPU-equivalents; 0 are held by 0 pod\(s\) and this pod needs 20/,
  );
  const base = admit(launcherPod({ devices: { [H100]: 20 } }), BASE_POLICY);
  t.equal(base.response.allowed, false, 'the base policy maps no VM devices: denied too');
  t.match(
    base.message,
    /nvidia\.com\/GH100_H100_SXM5_80GB is an accelerator resource .* that no pool of the policy maps/,
  );
  t.match(base.message, /deviceResources of a pool with fractionMode passthrough/);
});

t.test('a quota already half used counts the VM devices held', async (t) => {
  const running = [1, 2].map((i) => ({
    ...launcherPod({ vmName: `vm-${i}`, devices: { [H100]: 4 } }),
    spec: { ...launcherPod({ vmName: `vm-${i}`, devices: { [H100]: 4 } }).spec, nodeName: `h100-${i}` },
  }));
  const r = admit(launcherPod({ vmName: 'third', devices: { [H100]: 6 } }), VM_POLICY, running);
  t.equal(r.response.allowed, false);
  t.match(r.message, /8 are held by 2 pod\(s\) and this pod needs 6/);
  t.ok(admit(launcherPod({ vmName: 'third', devices: { [H100]: 4 } }), VM_POLICY, running).response.allowed);
});

t.test('4 passthrough H100s in a namespace without a tenant: denied', async (t) => {
  const r = admit(launcherPod({ namespace: 'plain', devices: { [H100]: 4 } }));
  t.equal(r.response.allowed, false);
  t.match(r.message, /namespace plain has no tessera\.io\/tenant label, and a namespace without a tenant gets no GPUs/);
});

t.test('30 vGPUs nvidia.com/GRID_T4-1Q: denied, in every namespace, with how to map them', async (t) => {
  for (const namespace of ['research-a', 'plain', 'ghost']) {
    const r = admit(launcherPod({ namespace, devices: { 'nvidia.com/GRID_T4-1Q': 30 } }));
    t.equal(r.response.allowed, false, namespace);
    t.match(r.message, /nvidia\.com\/GRID_T4-1Q is an accelerator resource \(nvidia\.com\/\* is published by/);
    t.match(
      r.message,
      /add \{ resource: nvidia\.com\/GRID_T4-1Q, perGpu: <devices per physical GPU> \} to the deviceResources of a passthrough or vgpu pool \(vm-h100, vm-l40s-vgpu\)/,
    );
  }
});

t.test('amd.com/gpu in any namespace, in any container kind: denied', async (t) => {
  for (const policy of [VM_POLICY, BASE_POLICY])
    for (const namespace of ['research-a', 'pay', 'plain', 'ghost']) {
      const app = pod('rocm').ns(namespace).limit('amd.com/gpu', '1').build();
      const r = admit(app, policy);
      t.equal(r.response.allowed, false, `${namespace}: app container`);
      t.match(
        r.message,
        /amd\.com\/gpu is an accelerator resource \(amd\.com\/\* is published by AMD's GPU device plugin\)/,
      );
      const init = pod('rocm-init').ns(namespace).build();
      init.spec!.initContainers = [{ name: 'warm', resources: { limits: { 'amd.com/gpu': '1' } } }];
      t.equal(admit(init, policy).response.allowed, false, `${namespace}: init container`);
      const sidecar = pod('rocm-sidecar').ns(namespace).build();
      sidecar.spec!.initContainers = [
        { name: 'side', restartPolicy: 'Always', resources: { requests: { 'amd.com/gpu': '2' } } },
      ];
      t.equal(admit(sidecar, policy).response.allowed, false, `${namespace}: sidecar, request without limit`);
    }
});

t.test('the VMs the vm policy allows are admitted, pinned and weighed in GPU-equivalents', async (t) => {
  const two = admit(launcherPod({ devices: { [H100]: 2 } }));
  t.equal(two.response.allowed, true, two.message);
  const placed = two.object as KubePod;
  t.equal(placed.metadata?.annotations?.['tessera.io/pool'], 'vm-h100');
  t.equal(placed.spec?.schedulerName, 'tessera-scheduler');
  t.match(placed.spec?.tolerations, [{ key: 'tessera.io/pool', value: 'vm-h100', effect: 'NoSchedule' }]);
  t.match(JSON.stringify(placed.spec?.affinity), /"key":"tessera.io\/pool","operator":"In","values":\["vm-h100"\]/);
  t.same(placed.spec?.containers?.[0]?.resources?.limits?.[H100], '2', 'the devices are kept as KubeVirt wrote them');
  t.equal(equivalentsOfPod(placed, VM_POLICY), 2);

  const vgpu = admit(launcherPod({ devices: { 'nvidia.com/NVIDIA_L40S-12Q': 1 } }));
  t.equal(vgpu.response.allowed, true, vgpu.message);
  t.equal((vgpu.object as KubePod).metadata?.annotations?.['tessera.io/pool'], 'vm-l40s-vgpu');
  t.equal(equivalentsOfPod(vgpu.object as KubePod, VM_POLICY), 0.25);

  const cpuOnly = admit(launcherPod({ namespace: 'plain' }));
  t.equal(cpuOnly.response.allowed, true, 'a VM without GPUs needs no tenant (devices.kubevirt.io/* are not GPUs)');
});

t.test("NVIDIA's NICs under nvidia.com are not accelerators", async (t) => {
  const nic = pod('rdma').ns('plain').limit('nvidia.com/hostdev', '1').build();
  t.equal(admit(nic, BASE_POLICY).response.allowed, true);
});

t.test('only KubeVirt gives a GPU pod a launcher identity', async (t) => {
  const forged = launcherPod({ devices: { [H100]: 1 } });
  const r = runAdmission(podRequest(forged), VM_POLICY, staticClusterView(NAMESPACES, []), CONFIG);
  t.equal(r.response.allowed, false);
  t.match(
    r.response.status?.message,
    /only KubeVirt's virt-controller gives a GPU pod the identity of a virt-launcher pod/,
  );
});

t.test('workload templates asking for an accelerator no pool maps are denied at their own admission', async (t) => {
  const template = pod('tpl').ns('research-a').limit('habana.ai/gaudi2', '8').build();
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'train', namespace: 'research-a' },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'train' } },
      template: { metadata: template.metadata, spec: template.spec },
    },
  };
  const r = runAdmission(
    {
      uid: 'tpl',
      kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
      namespace: 'research-a',
      name: 'train',
      operation: 'CREATE',
      userInfo: { username: 'bob@acme.example' },
      object: deployment,
    },
    BASE_POLICY,
    staticClusterView(NAMESPACES, []),
    CONFIG,
  );
  t.equal(r.response.allowed, false);
  t.match(
    r.response.status?.message,
    /\[tessera\/accelerators\] Deployment spec\.template: habana\.ai\/gaudi2 is an accelerator resource \(habana\.ai\/\* is published by Habana's Gaudi device plugin\)/,
  );
});

t.test('a GPUDirect pod with a NIC under nvidia.com: denied until the NIC is excluded, then admitted', async (t) => {
  const job = () =>
    pod('rdma').ns('research-a').annotate('tessera.io/gpu-count', '1').limit('nvidia.com/mlnxnics', '1').build();
  const denied = admit(job(), BASE_POLICY);
  t.equal(denied.response.allowed, false);
  t.match(denied.message, /lists it in the policy's acceleratorResources\.exclude instead/);
  const excluding = examplePolicy(
    readFileSync(new URL('../../../../../shared/examples/policy.yaml', import.meta.url), 'utf8').replace(
      'spec:\n',
      'spec:\n  acceleratorResources: { exclude: [nvidia.com/mlnxnics] }\n',
    ),
  );
  const admitted = admit(job(), excluding);
  t.equal(admitted.response.allowed, true, admitted.message);
  t.equal((admitted.object as KubePod).spec?.containers?.[0]?.resources?.limits?.['nvidia.com/mlnxnics'], '1');
});
