// The vm-devices node mode (GPU Operator nodes in vm-passthrough and vm-vgpu modes, KubeVirt's permittedHostDevices),
// and the policy checks of passthrough and vgpu pools and of acceleratorResources.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { readNode } from '../../../../core/inventory/node-inventory.ts';
import { fit } from '../../../../core/fit.ts';
import { Ledger } from '../../../../core/ledger.ts';
import { readDemand } from '../../../../core/demand.ts';
import { compilePolicy, formatProblem } from '../../../../core/policy/compile.ts';
import { SchedulingState } from '../../../../core/scheduling/state.ts';
import { exclusiveH100, node } from '../../../fixtures/nodes.ts';
import { launcherPod } from '../../../fixtures/kubevirt.ts';

const VM_TEXT = readFileSync(new URL('../../../../../shared/examples/vm/policy.yaml', import.meta.url), 'utf8');
const H100 = 'nvidia.com/GH100_H100_SXM5_80GB';
const kubevirtDevices = { 'devices.kubevirt.io/kvm': '1k', 'devices.kubevirt.io/tun': '1k' };

t.test('GPU Operator VM nodes are vm-devices nodes; KubeVirt’s own devices are not GPUs', async (t) => {
  const pt = readNode(
    node({
      name: 'pt',
      labels: { 'nvidia.com/gpu.workload.config': 'vm-passthrough' },
      allocatable: { ...kubevirtDevices, [H100]: '8' },
    }),
  );
  t.match(pt, { mode: 'vm-devices', usable: true, resources: { [H100]: 8 }, problems: [] });
  t.equal(pt.gpus.length, 8, 'passthrough devices are physical GPUs');
  t.notOk('devices.kubevirt.io/kvm' in pt.resources);
  const vg = readNode(
    node({
      name: 'vg',
      labels: { 'nvidia.com/gpu.workload.config': 'vm-vgpu', 'nvidia.com/gpu.count': '4' },
      allocatable: { 'nvidia.com/NVIDIA_L40S-12Q': '16' },
    }),
  );
  t.match(vg, { mode: 'vm-devices', resources: { 'nvidia.com/NVIDIA_L40S-12Q': 16 } });
  t.equal(vg.gpus.length, 4, 'a vGPU node counts its physical GPUs from GFD');
  const odd = readNode(
    node({ name: 'odd', labels: { 'nvidia.com/gpu.workload.config': 'container' }, allocatable: { [H100]: '2' } }),
  );
  t.match(odd.warnings, [/labelled nvidia.com\/gpu.workload.config=container but advertises VM devices/]);
  t.equal(readNode(node({ name: 'cpu', allocatable: kubevirtDevices })).mode, 'none');
});

t.test('a device name the policy maps outside the vendor domains is read once the policy is in force', async (t) => {
  const text = VM_TEXT.replace(
    '        - { resource: nvidia.com/NVIDIA_L40S-24Q, perGpu: 2 }\n',
    '        - { resource: nvidia.com/NVIDIA_L40S-24Q, perGpu: 2 }\n        - { resource: intel.com/U630, perGpu: 8 }\n',
  );
  const r = compilePolicy([{ name: 'p.yaml', text }]);
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join('\n'));
  const gvt = node({ name: 'gvt', allocatable: { 'intel.com/U630': '8', 'intel.com/sriov_netdevice': '4' } });
  t.equal(readNode(gvt).mode, 'none', 'intel.com is no accelerator domain by itself');
  const state = new SchedulingState();
  state.upsertNode(gvt);
  t.equal(state.nodes.get('gvt')!.mode, 'none');
  state.setPolicy(r.policy);
  t.match(state.nodes.get('gvt'), { mode: 'vm-devices', resources: { 'intel.com/U630': 8 } });
  t.notOk('intel.com/sriov_netdevice' in state.nodes.get('gvt')!.resources, 'its NICs stay NICs');
  t.same(readDemand(launcherPod({ devices: { 'intel.com/U630': 1 } }), r.policy.accelerators).devices, {
    'intel.com/U630': 1,
  });
});

t.test('fit counts devices like device-plugin GPUs, and a container GPU node offers none', async (t) => {
  const pt = readNode(node({ name: 'pt', allocatable: { [H100]: '2' } }));
  const demand = readDemand(launcherPod({ devices: { [H100]: 2 } }));
  t.match(fit(pt, new Ledger().usage('pt'), demand), { ok: true, placements: [{ resources: { [H100]: 2 } }] });
  const three = readDemand(launcherPod({ devices: { [H100]: 3 } }));
  t.match(fit(pt, new Ledger().usage('pt'), three), { ok: false, reason: { code: 'GpusExhausted' } });
  t.match(fit(readNode(exclusiveH100('e', 8)), new Ledger().usage('e'), demand), {
    ok: false,
    reason: { code: 'ModeMismatch', message: /asks for nvidia.com\/GH100_H100_SXM5_80GB but node e \(exclusive\)/ },
  });
});

t.test('pods ask for container GPUs or devices, with requests equal to limits', async (t) => {
  const both = launcherPod({ devices: { [H100]: 1 } });
  both.spec!.containers![0]!.resources!.limits!['nvidia.com/gpu'] = '1';
  t.throws(() => readDemand(both), /container GPUs or for devices, not both/);
  const uneven = launcherPod({ devices: { [H100]: 1 } });
  uneven.spec!.containers![0]!.resources!.requests![H100] = '2';
  t.throws(() => readDemand(uneven), /request \(2\) differs from its limit \(1\)/);
});

t.test('policy checks of device pools and acceleratorResources, each with its fix', async (t) => {
  const problems = (text: string) => {
    const r = compilePolicy([{ name: 'p.yaml', text }]);
    return r.ok ? [] : r.problems.map(formatProblem);
  };
  t.same(problems(VM_TEXT), [], 'the contract is clean');
  const pool = (fields: string) =>
    VM_TEXT.replace(
      '  # Tenants. A namespace',
      `    - name: extra\n      nodeSelector: { tessera.io/pool: extra }\n${fields}\n  # Tenants. A namespace`,
    );
  t.match(problems(pool('      fractionMode: passthrough')), [/missing required field "deviceResources"/]);
  t.match(
    problems(pool('      fractionMode: fraction\n      deviceResources: [{ resource: amd.com/gpu, perGpu: 1 }]')),
    [/deviceResources applies to fractionMode passthrough and vgpu only/],
  );
  t.match(
    problems(pool('      fractionMode: passthrough\n      deviceResources: [{ resource: amd.com/gpu, perGpu: 2 }]')),
    [/a passthrough device is one whole GPU, so perGpu must be 1 \(got 2\); use fractionMode vgpu/],
  );
  t.match(
    problems(pool('      fractionMode: vgpu\n      deviceResources: [{ resource: nvidia.com/gpu, perGpu: 2 }]')),
    [/nvidia.com\/gpu is a container GPU resource Tessera already accounts/],
  );
  t.match(
    problems(
      pool('      fractionMode: vgpu\n      deviceResources: [{ resource: nvidia.com/NVIDIA_L40S-12Q, perGpu: 3 }]'),
    ),
    [
      /nvidia.com\/NVIDIA_L40S-12Q has perGpu 3 here but 4 in pool vm-l40s-vgpu; one device weighs the same in every pool/,
    ],
  );
  t.match(problems(pool('      fractionMode: passthrough\n      deviceResources: [{ resource: GH100, perGpu: 1 }]')), [
    /deviceResources\/0\/resource/,
  ]);
  const accel = (block: string) => VM_TEXT.replace('spec:\n', `spec:\n  acceleratorResources:\n${block}\n`);
  t.same(
    problems(
      accel('    include: ["acme.example/", "intel.com/U6*", "example.com/npu"]\n    exclude: [nvidia.com/sriov_rdma]'),
    ),
    [],
  );
  t.match(problems(accel('    exclude: [nvidia.com/GH100_H100_SXM5_80GB]')), [
    /nvidia.com\/GH100_H100_SXM5_80GB is listed in exclude but pool vm-h100 maps it as a device/,
  ]);
  t.match(problems(accel('    include: ["no-domain"]')), [/acceleratorResources\/include\/0/]);
  const widened = compilePolicy([
    { name: 'p.yaml', text: accel('    include: ["acme.example/"]\n    exclude: [nvidia.com/sriov_rdma]') },
  ]);
  if (!widened.ok) throw new Error('policy');
  t.equal(widened.policy.accelerators.isDevice('acme.example/npu'), true);
  t.equal(widened.policy.accelerators.isDevice('nvidia.com/sriov_rdma'), false);
  t.equal(widened.policy.accelerators.isDevice('nvidia.com/gpu'), false, "Tessera's own names are accounted by pools");
});
