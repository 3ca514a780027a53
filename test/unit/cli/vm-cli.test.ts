// tessera explain, audit and usage with KubeVirt VMs: a virt-launcher pod is explained node by node on passthrough
// and vGPU nodes, audited against the policy in force, and charged in GPU-hours by its devices, once per VM.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { explain } from '../../../cli/explain.ts';
import { policyCommand } from '../../../cli/policy.ts';
import { auditPods } from '../../../core/admission/audit.ts';
import { staticClusterView } from '../../../core/admission/cluster-view.ts';
import { gpuHoursFromSnapshots } from '../../../core/chargeback/gpu-hours.ts';
import type { KubeNode, KubePod } from '../../../core/kube-objects.ts';
import { runAdmission } from '../../../core/admission/pipeline.ts';
import { CONFIG, examplePolicy, NAMESPACES, podRequest } from '../../fixtures/admission.ts';
import { KUBEVIRT_CONTROLLER, launcherPod } from '../../fixtures/kubevirt.ts';
import { node } from '../../fixtures/nodes.ts';

const VM_TEXT = readFileSync(new URL('../../../../shared/examples/vm/policy.yaml', import.meta.url), 'utf8');
const POLICY = examplePolicy(VM_TEXT);
const H100 = 'nvidia.com/GH100_H100_SXM5_80GB';

const vmNode = (name: string, pool: string, devices: Record<string, string>): KubeNode => ({
  ...node({ name, labels: { 'tessera.io/pool': pool }, allocatable: devices }),
  spec: { taints: [{ key: 'tessera.io/pool', value: pool, effect: 'NoSchedule' }] },
});
const bound = (p: KubePod, nodeName: string): KubePod => ({
  ...p,
  metadata: { ...p.metadata, annotations: { ...p.metadata?.annotations, 'tessera.io/pool': 'vm-h100' } },
  spec: { ...p.spec, nodeName },
  status: { phase: 'Running' },
});

t.test('explain: a launcher pod on passthrough and vGPU nodes', async (t) => {
  const nodes = [vmNode('pt-0', 'vm-h100', { [H100]: '8' }), vmNode('pt-1', 'vm-h100', { [H100]: '8' })];
  nodes.push(vmNode('vg-0', 'vm-l40s-vgpu', { 'nvidia.com/NVIDIA_L40S-12Q': '16' }));
  const running = [bound(launcherPod({ vmName: 'old', devices: { [H100]: 7 } }), 'pt-0')];
  const e = explain(launcherPod({ devices: { [H100]: 2 } }), nodes, running, NAMESPACES, POLICY);
  t.equal(e.admission?.allowed, true, e.admission?.message ?? '');
  const verdicts = Object.fromEntries(e.nodes.map((n) => [n.name, n.reason ?? 'fits']));
  t.match(verdicts, {
    'pt-0': /^GpusExhausted: pod needs 2 nvidia.com\/GH100_H100_SXM5_80GB, node has 1 free of 8/,
    'pt-1': 'fits',
    'vg-0': /^NodeNotInPool/,
  });
  t.equal(e.choice?.node, 'pt-1');
});

t.test('audit: launcher pods are re-checked against the policy in force', async (t) => {
  const admitted = runAdmission(
    podRequest(launcherPod({ devices: { [H100]: 2 }, labels: { team: 'vision', 'cost-center': '1234' } }), {
      user: KUBEVIRT_CONTROLLER,
    }),
    POLICY,
    staticClusterView(NAMESPACES, []),
    CONFIG,
  );
  t.equal(admitted.response.allowed, true);
  const pods = [bound(admitted.object as KubePod, 'pt-0')];
  const view = staticClusterView(NAMESPACES, pods);
  t.equal(auditPods(pods, POLICY, view).drifted.length, 0, 'admitted under this policy: no drift');
  // The platform drops the passthrough pool: the running VM now holds devices no pool maps.
  const without = examplePolicy(
    VM_TEXT.replace(
      '        - { resource: nvidia.com/GH100_H100_SXM5_80GB, perGpu: 1 }\n',
      '        - { resource: nvidia.com/GH100_NVL, perGpu: 1 }\n',
    ),
  );
  const report = auditPods(pods, without, staticClusterView(NAMESPACES, pods));
  t.equal(report.drifted.length, 1);
  t.match(
    report.drifted[0]!.violations.map((v) => v.rule),
    ['tessera/accelerators'],
  );
});

t.test('usage: GPU-hours of a VM by its devices, once during a live migration', async (t) => {
  const source = bound(launcherPod({ devices: { [H100]: 2 } }), 'pt-0');
  const target = bound(launcherPod({ devices: { [H100]: 2 }, migrationJob: { uid: 'm1', name: 'mig' } }), 'pt-1');
  const at = (minute: number, pods: KubePod[]) => ({
    time: new Date(Date.UTC(2026, 11, 7, 9, minute)).toISOString(),
    nodes: [],
    pods,
    namespaces: NAMESPACES,
  });
  const report = gpuHoursFromSnapshots(
    [at(0, [source]), at(30, [source, target]), at(60, [target])],
    POLICY,
    new Date(Date.UTC(2026, 11, 7, 9, 0)),
    new Date(Date.UTC(2026, 11, 7, 10, 0)),
  );
  t.same(report.rows, [{ tenant: 'research', namespace: 'research-a', pool: 'vm-h100', gpuHours: 2 }]);
});

t.test('policy test runs the VM suite: the four side doors denied, the VMs the policy allows admitted', async (t) => {
  const suite = new URL('../../policy/vm/vm-policy.test.yaml', import.meta.url).pathname;
  const lines: string[] = [];
  const original = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  let code: number;
  try {
    code = policyCommand(['test', suite]);
  } finally {
    console.log = original;
  }
  t.match(lines.join('\n'), /6 passed, 0 failed/);
  t.equal(code, 0);
});
