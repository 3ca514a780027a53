// Properties of the accounting of accelerators and VM devices, over random pods and random event sequences:
// - no accelerator resource is ever admitted unaccounted: whatever a pod asks for, in whatever container and
//   namespace, an admitted pod holds only Tessera's GPU names and devices a pool maps;
// - an admitted pod's devices weigh exactly the sum of 1/perGpu each, and its tenant's usage is that sum;
// - a VM's launcher pods (a live migration's source and target) count as the most either holds, in the webhook's
//   usage index and in the extender's ledger alike, whatever order pods come and go in.

import t from 'tap';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { staticClusterView } from '../../../../core/admission/cluster-view.ts';
import { runAdmission } from '../../../../core/admission/pipeline.ts';
import { TenantUsageIndex } from '../../../../core/admission/tenant-usage.ts';
import { newAllocation } from '../../../../core/allocation.ts';
import type { KubePod } from '../../../../core/kube-objects.ts';
import { vmOfPod } from '../../../../core/kubevirt/launcher.ts';
import { Ledger } from '../../../../core/ledger.ts';
import { deviceWeight } from '../../../../core/pools/device-plan.ts';
import { equivalentsOfPod } from '../../../../core/pools/equivalents.ts';
import { isGpuResource } from '../../../../core/well-known-names.ts';
import { CONFIG, examplePolicy, NAMESPACES, podRequest } from '../../../fixtures/admission.ts';
import { KUBEVIRT_CONTROLLER, launcherPod } from '../../../fixtures/kubevirt.ts';

const POLICY = examplePolicy(
  readFileSync(new URL('../../../../../shared/examples/vm/policy.yaml', import.meta.url), 'utf8'),
);
const MAPPED = ['nvidia.com/GH100_H100_SXM5_80GB', 'nvidia.com/NVIDIA_L40S-12Q', 'nvidia.com/NVIDIA_L40S-24Q'];
const NAMES = [
  ...MAPPED,
  'nvidia.com/GRID_T4-1Q',
  'nvidia.com/GA100_A100_PCIE_80GB',
  'nvidia.com/gpumem',
  'nvidia.com/gpu',
  'nvidia.com/mig-1g.10gb',
  'tessera.io/gpu-milli',
  'amd.com/gpu',
  'gpu.intel.com/i915',
  'habana.ai/gaudi2',
  'aws.amazon.com/neuroncore',
  'google.com/tpu',
  'xilinx.com/fpga-xilinx_u30',
  'hygon.com/dcunum',
  'nvidia.com/hostdev',
  'devices.kubevirt.io/kvm',
  'example.com/dongle',
];

// Biased towards pods that can be admitted (the mapped devices of one pool, in a tenant's namespace, created by
// KubeVirt), so that the property is tried on admitted pods as well as denied ones.
const containerResources = fc.oneof(
  { arbitrary: fc.dictionary(fc.constantFrom(...NAMES), fc.integer({ min: 0, max: 12 }), { maxKeys: 3 }), weight: 2 },
  { arbitrary: fc.dictionary(fc.constantFrom(MAPPED[1]!, MAPPED[2]!), fc.integer({ min: 0, max: 3 })), weight: 3 },
);

t.test('no accelerator resource is ever admitted unaccounted', async (t) => {
  let admittedWithDevices = 0;
  fc.assert(
    fc.property(
      fc.constantFrom('research-a', 'research-a', 'research-a', 'pay', 'plain', 'ghost'),
      fc.array(fc.record({ resources: containerResources, init: fc.boolean(), limitsOnly: fc.boolean() }), {
        minLength: 1,
        maxLength: 3,
      }),
      fc.constantFrom(true, true, true, false),
      (namespace, containers, asKubeVirt) => {
        const pod = launcherPod({ namespace });
        const spec = pod.spec!;
        for (const [i, c] of containers.entries()) {
          const quantities = Object.fromEntries(Object.entries(c.resources).map(([r, n]) => [r, String(n)]));
          const resources = c.limitsOnly ? { limits: quantities } : { requests: quantities, limits: quantities };
          const container = { name: `c${i}`, image: 'registry.example/x:1', resources };
          if (c.init) (spec.initContainers ??= []).push(container);
          else spec.containers!.push(container);
        }
        const r = runAdmission(
          podRequest(pod, asKubeVirt ? { user: KUBEVIRT_CONTROLLER } : {}),
          POLICY,
          staticClusterView(NAMESPACES, []),
          CONFIG,
        );
        if (!r.response.allowed) return true;
        const admitted = r.object as KubePod;
        let devices = 0;
        for (const c of [...(admitted.spec?.containers ?? []), ...(admitted.spec?.initContainers ?? [])]) {
          for (const [name, q] of Object.entries({ ...c.resources?.limits, ...c.resources?.requests })) {
            if (Number(q) === 0 || isGpuResource(name) || !POLICY.accelerators.isDevice(name)) continue;
            const weight = deviceWeight(POLICY, name);
            if (weight === null) throw new Error(`${name} admitted unaccounted in ${namespace}`);
            if (namespace !== 'research-a') throw new Error(`${name} admitted outside a tenant of the policy`);
          }
        }
        // What the admitted pod weighs is what its devices weigh (plus its container GPUs, planned by its pool).
        // (App containers add up; init containers run before them, so they are left out of this simple sum.)
        const inInit = (admitted.spec?.initContainers ?? []).some((c) =>
          Object.keys(c.resources?.limits ?? {}).some((n) => MAPPED.includes(n)),
        );
        for (const c of inInit ? [] : (admitted.spec?.containers ?? []))
          for (const [name, q] of Object.entries(c.resources?.limits ?? {}))
            if (MAPPED.includes(name)) devices += Number(q) * deviceWeight(POLICY, name)!;
        if (devices > 0) admittedWithDevices++;
        if (devices > 0 && Math.abs(equivalentsOfPod(admitted, POLICY) - devices) > 1e-9)
          throw new Error(`weighs ${equivalentsOfPod(admitted, POLICY)}, devices say ${devices}`);
        return true;
      },
    ),
    { numRuns: 400 },
  );
  t.ok(admittedWithDevices > 0, `${admittedWithDevices} of 400 random pods admitted with devices`);
});

interface Launcher {
  readonly vm: number;
  readonly migration: boolean;
  readonly count: number;
  readonly profile: 0 | 1 | 2;
}

const launcherArb = fc.record({
  vm: fc.integer({ min: 0, max: 3 }),
  migration: fc.boolean(),
  count: fc.integer({ min: 1, max: 4 }),
  profile: fc.constantFrom<0 | 1 | 2>(0, 1, 2),
});

function podOf(l: Launcher, i: number): KubePod {
  const p = launcherPod({
    vmName: `vm-${l.vm}`,
    devices: { [MAPPED[l.profile]!]: l.count },
    ...(l.migration ? { migrationJob: { uid: `mig-${i}`, name: `m-${i}` } } : {}),
  });
  return {
    ...p,
    metadata: { ...p.metadata, name: `launcher-${i}`, uid: `pod-${i}` },
    spec: { ...p.spec, nodeName: 'n' },
  };
}

t.test(
  "a VM's launcher pods count once, as the most one holds: usage index and ledger agree with the model",
  async (t) => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ add: launcherArb, removeEarlier: fc.option(fc.nat({ max: 20 })) }), { maxLength: 20 }),
        (steps) => {
          const index = new TenantUsageIndex((ns) => (ns === 'research-a' ? 'research' : null));
          const ledger = new Ledger();
          const live = new Map<string, KubePod>();
          steps.forEach((step, i) => {
            const pod = podOf(step.add, i);
            live.set(pod.metadata!.uid!, pod);
            index.upsertPod(pod);
            const eq = equivalentsOfPod(pod, POLICY);
            ledger.add(
              newAllocation({
                pod: {
                  uid: pod.metadata!.uid!,
                  namespace: 'research-a',
                  name: pod.metadata!.name!,
                  cpuMilli: 0,
                  memoryMiB: 0,
                },
                tenant: 'research',
                node: 'n',
                holding: { resources: {}, gpus: [], sharing: false },
                equivalents: eq,
                vm: vmOfPod(pod),
              }),
            );
            if (step.removeEarlier !== null) {
              const uid = `pod-${step.removeEarlier % (i + 1)}`;
              const gone = live.get(uid);
              if (gone) {
                live.delete(uid);
                index.removePod(gone);
                ledger.remove(uid);
              }
            }
            // The model: per VM the largest, summed over VMs; each device 1/perGpu.
            const perVm = new Map<string, number>();
            for (const p of live.values())
              perVm.set(vmOfPod(p)!, Math.max(perVm.get(vmOfPod(p)!) ?? 0, equivalentsOfPod(p, POLICY)));
            const expected = [...perVm.values()].reduce((a, b) => a + b, 0);
            const fromIndex = index.usage('research', POLICY, null).equivalents;
            const fromLedger = ledger.tenantEquivalents('research');
            if (Math.abs(fromIndex - expected) > 1e-9 || Math.abs(fromLedger - expected) > 1e-9)
              throw new Error(`index ${fromIndex}, ledger ${fromLedger}, model ${expected}`);
          });
          return true;
        },
      ),
      { numRuns: 300 },
    );
    t.pass('300 random sequences');
  },
);

t.test('devices weigh 1/perGpu each, as the pool says', async (t) => {
  fc.assert(
    fc.property(fc.tuple(fc.nat({ max: 8 }), fc.nat({ max: 16 }), fc.nat({ max: 8 })), ([h100, q12, q24]) => {
      const devices = Object.fromEntries(
        [
          [MAPPED[0]!, h100],
          [MAPPED[1]!, q12],
          [MAPPED[2]!, q24],
        ].filter(([, n]) => Number(n) > 0),
      );
      const pod = launcherPod({ devices });
      const expected = h100 + q12 / 4 + q24 / 2;
      return Math.abs(equivalentsOfPod(pod, POLICY) - expected) < 1e-9;
    }),
  );
  t.pass();
});
