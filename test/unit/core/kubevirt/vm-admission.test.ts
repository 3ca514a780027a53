// VirtualMachineInstance and VirtualMachine at their own admission: checked as the launcher pod virt-controller renders
// from them, so that `kubectl apply` of a VM gets Tessera's denial at once; a tessera.io/gpu-fraction on a VM picks the
// smallest vGPU profile of the tenant's vgpu pools that meets it, written where the VM names its devices.

import t from 'tap';
import { readFileSync } from 'node:fs';
import jsonPatch from 'fast-json-patch';
import { staticClusterView } from '../../../../core/admission/cluster-view.ts';
import { runAdmission } from '../../../../core/admission/pipeline.ts';
import { validateRequest } from '../../../../core/admission/validation.ts';
import type { KubePod } from '../../../../core/kube-objects.ts';
import { launcherPodOf, vmiView } from '../../../../core/kubevirt/vm-objects.ts';
import { CONFIG, examplePolicy, NAMESPACES } from '../../../fixtures/admission.ts';
import { KUBEVIRT_CONTROLLER, launcherPod, vm, vmi, vmRequest } from '../../../fixtures/kubevirt.ts';

const POLICY = examplePolicy(
  readFileSync(new URL('../../../../../shared/examples/vm/policy.yaml', import.meta.url), 'utf8'),
);
const H100 = 'nvidia.com/GH100_H100_SXM5_80GB';

function review(
  obj: Record<string, unknown>,
  running: KubePod[] = [],
  operation: 'CREATE' | 'UPDATE' = 'CREATE',
  old?: Record<string, unknown>,
) {
  const r = runAdmission(
    vmRequest(obj, { operation, ...(old ? { old } : {}) }),
    POLICY,
    staticClusterView(NAMESPACES, running),
    CONFIG,
  );
  const patched = r.response.patch
    ? (jsonPatch.applyPatch(
        structuredClone(obj),
        JSON.parse(Buffer.from(r.response.patch, 'base64').toString()),
        true,
        false,
      ).newDocument as Record<string, unknown>)
    : obj;
  return { ...r, message: r.response.status?.message ?? '', patched };
}

t.test('the launcher pod rendered from a VMI carries what virt-controller would put on it', async (t) => {
  const obj = vmi({
    gpus: [
      { name: 'g1', deviceName: H100 },
      { name: 'g2', deviceName: H100 },
      { name: 'dra', claimName: 'vfio', requestName: 'gpu' },
    ],
    hostDevices: [{ name: 'h1', deviceName: H100 }],
    annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}', 'tessera.io/pool': 'vm-h100' },
  });
  const pod = launcherPodOf(vmiView('VirtualMachineInstance', obj)!, 'research-a');
  t.same(pod.spec?.containers?.[0]?.resources?.limits?.[H100], 3, 'one per gpus[] and hostDevices[] entry');
  t.same(pod.spec?.containers?.[0]?.resources?.claims, [{ name: 'vfio', request: 'gpu' }]);
  t.equal(pod.metadata?.labels?.['kubevirt.io'], 'virt-launcher');
  t.equal(pod.metadata?.labels?.['kubevirt.io/created-by'], 'vmi-uid-gpu-vm');
  t.equal(pod.metadata?.annotations?.['tessera.io/pool'], 'vm-h100');
  t.notOk(pod.metadata?.annotations?.['kubectl.kubernetes.io/last-applied-configuration']);
  // The VMI's own domain.resources win over what was counted (renderresources.go Limits()).
  const own = vmi({ gpus: [{ name: 'g1', deviceName: H100 }], resources: { limits: { [H100]: '4' } } });
  t.same(
    launcherPodOf(vmiView('VirtualMachineInstance', own)!, 'x').spec?.containers?.[0]?.resources?.limits?.[H100],
    '4',
  );
});

t.test('VMIs: admitted in the tenant pools, denied synchronously otherwise', async (t) => {
  t.equal(review(vmi({ gpus: [{ name: 'g', deviceName: H100 }] })).response.allowed, true);
  const big = review(vmi({ gpus: Array.from({ length: 9 }, (_, i) => ({ name: `g${i}`, deviceName: H100 })) }));
  t.equal(big.response.allowed, false);
  t.match(
    big.message,
    /VirtualMachineInstance gpu-vm: the pod asks for 9 GPU-equivalents; tenant research allows at most 8 per pod/,
  );
  const untenanted = review(vmi({ namespace: 'plain', gpus: [{ name: 'g', deviceName: H100 }] }));
  t.match(untenanted.message, /namespace plain has no tessera\.io\/tenant label/);
  const t4 = review(vmi({ hostDevices: [{ name: 'h', deviceName: 'nvidia.com/GRID_T4-1Q' }] }));
  t.match(
    t4.message,
    /\[tessera\/accelerators\] VirtualMachineInstance gpu-vm: nvidia\.com\/GRID_T4-1Q is an accelerator resource/,
  );
  const raw = review(
    vmi({ resources: { requests: { memory: '1Gi', 'amd.com/gpu': '1' }, limits: { 'amd.com/gpu': '1' } } }),
  );
  t.match(raw.message, /amd\.com\/gpu is an accelerator resource/, 'a GPU asked for through domain.resources');
  const elsewhere = review(
    vmi({ gpus: [{ name: 'g', deviceName: H100 }], annotations: { 'tessera.io/pool': 'shared-h100' } }),
  );
  t.match(elsewhere.message, /pool shared-h100 shares GPUs by Tessera fractions/);
});

t.test('VMIs count against quota at their admission; a running VM holds its devices', async (t) => {
  const running = [launcherPod({ vmName: 'big', devices: { [H100]: 8 } })].map((p) => ({
    ...p,
    spec: { ...p.spec, nodeName: 'n1' },
  }));
  const over = review(
    vmi({ gpus: Array.from({ length: 5 }, (_, i) => ({ name: `g${i}`, deviceName: H100 })) }),
    running,
  );
  t.equal(over.response.allowed, false);
  t.match(over.message, /quota of 12 GPU-equivalents; 8 are held by 1 pod\(s\) and this pod needs 5/);
  t.equal(review(vmi({ gpus: [{ name: 'g', deviceName: H100 }] }), running).response.allowed, true);
  // A VirtualMachine holds nothing until it runs: its template is checked for everything but quota.
  t.equal(
    review(vm({ gpus: Array.from({ length: 5 }, (_, i) => ({ name: `g${i}`, deviceName: H100 })) }), running).response
      .allowed,
    true,
  );
});

t.test('VirtualMachines: the template is checked; an UPDATE is judged by what it adds', async (t) => {
  const bad = vm({ hostDevices: [{ name: 'h', deviceName: 'habana.ai/gaudi' }] });
  const created = review(bad);
  t.equal(created.response.allowed, false);
  t.match(created.message, /VirtualMachine gpu-vm spec\.template: habana\.ai\/gaudi is an accelerator resource/);
  const stopped = structuredClone(bad) as { spec: { runStrategy: string } };
  stopped.spec.runStrategy = 'Halted';
  t.equal(review(stopped, [], 'UPDATE', bad).response.allowed, true, 'stopping a VM that drifted is not blocked');
  const good = vm({ gpus: [{ name: 'g', deviceName: H100 }] });
  t.equal(review(bad, [], 'UPDATE', good).response.allowed, false, 'adding an unmapped device is');
});

t.test('tessera.io/gpu-fraction on a VM picks the smallest vGPU profile that meets it', async (t) => {
  const cases: [string, string][] = [
    ['0.1', 'nvidia.com/NVIDIA_L40S-12Q'],
    ['0.25', 'nvidia.com/NVIDIA_L40S-12Q'],
    ['0.3', 'nvidia.com/NVIDIA_L40S-24Q'],
    ['0.5', 'nvidia.com/NVIDIA_L40S-24Q'],
  ];
  for (const [fraction, profile] of cases) {
    const r = review(vmi({ annotations: { 'tessera.io/gpu-fraction': fraction } }));
    t.equal(r.response.allowed, true, `${fraction}: ${r.message}`);
    const spec = r.patched.spec as { domain: { devices: { gpus: { deviceName: string }[] } } };
    t.same(
      spec.domain.devices.gpus.map((g) => g.deviceName),
      [profile],
      fraction,
    );
    t.equal(
      (r.patched.metadata as { annotations: Record<string, string> }).annotations['tessera.io/pool'],
      'vm-l40s-vgpu',
    );
    // The launcher pod KubeVirt renders from it is admitted as it comes, with the profile as its device.
    const launcher = launcherPod({
      devices: { [profile]: 1 },
      annotations: { 'tessera.io/gpu-fraction': fraction, 'tessera.io/pool': 'vm-l40s-vgpu' },
    });
    const pod = runAdmission(
      {
        ...vmRequest({ kind: 'x', metadata: {} }),
        kind: { group: '', version: 'v1', kind: 'Pod' },
        namespace: 'research-a',
        userInfo: KUBEVIRT_CONTROLLER,
        object: launcher,
      },
      POLICY,
      staticClusterView(NAMESPACES, []),
      CONFIG,
    );
    t.equal(pod.response.allowed, true, `launcher for ${fraction}: ${pod.response.status?.message}`);
  }
  // A gpus[] entry naming another profile of the pool is rewritten; run again, nothing changes.
  const named = review(
    vmi({
      annotations: { 'tessera.io/gpu-fraction': '0.25' },
      gpus: [{ name: 'v', deviceName: 'nvidia.com/NVIDIA_L40S-24Q' }],
    }),
  );
  t.same((named.patched.spec as { domain: { devices: { gpus: unknown[] } } }).domain.devices.gpus, [
    { name: 'v', deviceName: 'nvidia.com/NVIDIA_L40S-12Q' },
  ]);
  t.notOk(review(named.patched).response.patch, 'idempotent');
  // A VirtualMachine's template gets the same.
  const machine = review(vm({ annotations: { 'tessera.io/gpu-fraction': '0.5' } }));
  t.match(
    JSON.stringify(machine.patched),
    /"gpus":\[\{"name":"tessera-vgpu","deviceName":"nvidia.com\/NVIDIA_L40S-24Q"\}\]/,
  );
  const tiny = review(vmi({ annotations: { 'tessera.io/gpu-fraction': '0.01' } }));
  t.match(
    tiny.message,
    /\[gpu-request-bounds\] VirtualMachineInstance gpu-vm: the pod asks for 0.01 of a GPU; the minimum is 0.05/,
  );
  const tooBig = review(vmi({ annotations: { 'tessera.io/gpu-fraction': '0.75' } }));
  t.equal(tooBig.response.allowed, false);
  t.match(
    tooBig.message,
    /^Tessera denied this VirtualMachineInstance:\n- \[tessera\/kubevirt\] VirtualMachineInstance gpu-vm: tessera\.io\/gpu-fraction=0\.75 on a VM: no vGPU profile of tenant research's vgpu pools is that large \(vm-l40s-vgpu: nvidia\.com\/NVIDIA_L40S-12Q \(1\/4\), nvidia\.com\/NVIDIA_L40S-24Q \(1\/2\)\)/,
  );
});

t.test(
  'a launcher pod with a fraction but no vGPU (the VM webhook was not there) is denied, not rewritten',
  async (t) => {
    const launcher = launcherPod({ annotations: { 'tessera.io/gpu-fraction': '0.25' } });
    const r = runAdmission(
      {
        ...vmRequest({ kind: 'x', metadata: {} }),
        kind: { group: '', version: 'v1', kind: 'Pod' },
        namespace: 'research-a',
        userInfo: KUBEVIRT_CONTROLLER,
        object: launcher,
      },
      POLICY,
      staticClusterView(NAMESPACES, []),
      CONFIG,
    );
    t.equal(r.response.allowed, false);
    t.match(r.response.status?.message, /Enable Tessera's KubeVirt webhook \(chart value kubevirt\.enabled/);
  },
);

t.test('a fraction on a VM without a vgpu pool, or that never got its vGPU, is denied with what to do', async (t) => {
  const pay = review(vmi({ namespace: 'pay', annotations: { 'tessera.io/gpu-fraction': '0.25' } }));
  t.equal(pay.response.allowed, false);
  t.match(
    pay.message,
    /tessera\.io\/gpu-fraction=0\.25 on a VM is met with a vGPU, but tenant payments-ml has no vgpu pool/,
  );
  // The validating webhook alone (its mutating twin not registered): the VMI still holds no vGPU.
  const verdict = validateRequest(
    vmRequest(vmi({ annotations: { 'tessera.io/gpu-fraction': '0.25' } })),
    POLICY,
    staticClusterView(NAMESPACES, []),
    CONFIG,
  );
  t.equal(verdict.allowed, false);
  t.match(
    verdict.violations.map((v) => v.message).join('\n'),
    /check that Tessera's mutating webhook for KubeVirt is registered \(mutate-vm\.tessera\.io\)/,
  );
});
