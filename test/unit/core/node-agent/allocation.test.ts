import t from 'tap';
import fc from 'fast-check';
import { identifyAdmittingPod, type ListedPod } from '../../../../core/node-agent/admitting-pod.ts';
import {
  assignedShares,
  containerAnswer,
  type AssignmentCheck,
} from '../../../../core/node-agent/allocation-answer.ts';
import { enforcementEdits } from '../../../../core/node-agent/enforcement.ts';
import type { KubePod } from '../../../../core/kube-objects.ts';
import { pod } from '../../../fixtures/pods.ts';

const U = (n: number) => `GPU-${String(n).padStart(8, '0')}-0000-4000-8000-${String(n).padStart(12, '0')}`;
const GPUS = [0, 1, 2, 3].map((i) => ({ index: i, uuid: U(i), minor: i, busId: `0000:0${i}:00.0`, model: 'H100' }));

/** A fraction pod as Tessera's webhook and extender leave it, bound to node n1. */
function withExtra(
  name: string,
  milli: number,
  gpus: { index: number; milli: number; memoryMiB: number }[],
  extra: Record<string, string> = {},
): KubePod {
  const p = pod(name)
    .ns('research-a')
    .gpuMilli(milli)
    .annotate('tessera.io/policy-revision', 'rev1')
    .annotate('tessera.io/assignment', JSON.stringify({ node: 'n1', gpus }))
    .boundTo('n1')
    .phase('Pending')
    .build();
  p.spec!.schedulerName = 'tessera-scheduler';
  Object.assign(p.metadata!.annotations!, extra);
  return p;
}

const listed = (p: KubePod, devices: number): ListedPod => ({
  namespace: p.metadata!.namespace!,
  name: p.metadata!.name!,
  containers: (p.spec!.containers ?? []).map((c) => ({ name: c.name, devices })),
});
const specOf = (pods: KubePod[]) => (ns: string, name: string) =>
  pods.find((p) => p.metadata!.namespace === ns && p.metadata!.name === name);

t.test('property: pods admitted one at a time are each identified exactly, whatever their requests', async () => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom(100, 250, 250, 500, 1000), { minLength: 1, maxLength: 12 }),
      fc.nat(),
      (requests, seed) => {
        const pods = requests.map((m, i) => withExtra(`p${i}`, m, [{ index: i % 4, milli: m, memoryMiB: 1024 }]));
        // The kubelet's admission order is its own (creation time); shuffle it.
        const order = pods.map((_, i) => i).sort((a, b) => ((a * 7919 + seed) % 13) - ((b * 7919 + seed) % 13));
        for (let k = 0; k < order.length; k++) {
          const admitted = order.slice(0, k).map((i) => listed(pods[i]!, requests[i]!));
          const current = order[k]!;
          const view = [...admitted, listed(pods[current]!, 0)];
          const id = identifyAdmittingPod(view, specOf(pods), requests[current]!);
          if (!id.ok || id.found.pod !== pods[current]) return false;
        }
        return true;
      },
    ),
  );
});

t.test('refusals: nobody waiting, several waiting, pod deleted, running pods never chosen', async (t) => {
  const a = withExtra('a', 250, [{ index: 0, milli: 250, memoryMiB: 1 }]);
  const b = withExtra('b', 250, [{ index: 1, milli: 250, memoryMiB: 1 }]);
  const none = identifyAdmittingPod([listed(a, 250)], specOf([a]), 250);
  t.equal(none.ok, false);
  if (!none.ok) t.match(none.message, /no pod on this node waits for 250 tessera.io\/gpu-milli/);
  const two = identifyAdmittingPod([listed(a, 0), listed(b, 0)], specOf([a, b]), 250);
  t.equal(two.ok, false);
  if (!two.ok) t.match(two.message, /2 pods .*\(research-a\/a, research-a\/b\).*refuses to guess/);
  const gone = identifyAdmittingPod([listed(a, 0)], specOf([]), 250);
  if (!gone.ok) t.match(gone.message, /no longer has: research-a\/a/);
  else t.fail('a deleted pod is never answered for');
  const running = structuredClone(b);
  running.status = { phase: 'Running' };
  const r = identifyAdmittingPod([listed(a, 0), listed(running, 0)], specOf([a, running]), 250);
  t.equal(
    r.ok && r.found.pod.metadata!.name,
    'a',
    'a running pod without devices (admitted before the agent) is not a candidate',
  );
  const other = identifyAdmittingPod([listed(a, 0)], specOf([a]), 500);
  t.equal(other.ok, false, 'a request of another size is not this pod');
});

const check = (
  others: Map<string, { node: string; gpus: { index: number; milli: number; memoryMiB: number }[] }> = new Map(),
): AssignmentCheck => ({
  node: 'n1',
  gpus: GPUS,
  unhealthy: new Set([U(3)]),
  schedulerNames: ['tessera-scheduler'],
  others,
});

t.test('the assignment is handed out only when Tessera wrote it for this node and request', async (t) => {
  const ok = assignedShares(withExtra('a', 250, [{ index: 1, milli: 250, memoryMiB: 20480 }]), check());
  t.same(ok.ok && ok.shares.map((s) => [s.gpu.uuid, s.milli, s.memoryMiB]), [[U(1), 250, 20480]]);

  const cases: [string, KubePod, RegExp][] = [
    [
      'no assignment',
      (() => {
        const p = withExtra('x', 250, []);
        delete p.metadata!.annotations!['tessera.io/assignment'];
        return p;
      })(),
      /has no tessera.io\/assignment/,
    ],
    [
      'another scheduler',
      (() => {
        const p = withExtra('x', 250, [{ index: 0, milli: 250, memoryMiB: 1 }]);
        p.spec!.schedulerName = 'default-scheduler';
        return p;
      })(),
      /scheduled by default-scheduler.*not written by Tessera/,
    ],
    [
      'never admitted by the webhook',
      (() => {
        const p = withExtra('x', 250, [{ index: 0, milli: 250, memoryMiB: 1 }]);
        delete p.metadata!.annotations!['tessera.io/policy-revision'];
        return p;
      })(),
      /no tessera.io\/policy-revision/,
    ],
    ['malformed', withExtra('x', 250, [], { 'tessera.io/assignment': '{"node":' }), /not JSON/],
    [
      'another node',
      withExtra('x', 250, [], {
        'tessera.io/assignment': JSON.stringify({ node: 'n2', gpus: [{ index: 0, milli: 250, memoryMiB: 1 }] }),
      }),
      /is for node n2, not n1/,
    ],
    ['size mismatch', withExtra('x', 500, [{ index: 0, milli: 250, memoryMiB: 1 }]), /reserves 250 .* requests 500/],
    [
      'unknown GPU',
      withExtra('x', 250, [{ index: 9, milli: 250, memoryMiB: 1 }]),
      /names GPU 9, but this node has 4 GPU/,
    ],
    ['unhealthy GPU', withExtra('x', 250, [{ index: 3, milli: 250, memoryMiB: 1 }]), /GPU 3 .* unhealthy or gone/],
  ];
  for (const [what, p, message] of cases) {
    const r = assignedShares(p, check());
    t.equal(r.ok, false, what);
    if (!r.ok) t.match(r.message, message, what);
  }
  const crowded = assignedShares(
    withExtra('x', 500, [{ index: 0, milli: 500, memoryMiB: 1 }]),
    check(new Map([['research-a/y', { node: 'n1', gpus: [{ index: 0, milli: 750, memoryMiB: 1 }] }]])),
  );
  t.equal(crowded.ok, false, 'an assignment that would put 1250 milli on a GPU is refused');
  if (!crowded.ok) t.same(crowded.conflicts, ['research-a/y']);
});

t.test('answers in every delivery mode name exactly the assigned GPUs by UUID', async (t) => {
  const shares = [
    { gpu: GPUS[0]!, milli: 1000, memoryMiB: 81920 },
    { gpu: GPUS[2]!, milli: 1000, memoryMiB: 81920 },
  ];
  const paths = { hamiCoreDir: '/usr/local/vgpu', mpsPipeDir: '/tmp/nvidia-mps' };
  const base = { cdiKind: 'nvidia.com/gpu', enforcement: 'none' as const, paths };
  t.same(containerAnswer(shares, { ...base, mode: 'cdi-cri' }), {
    envs: { NVIDIA_VISIBLE_DEVICES: 'void', TESSERA_GPU_DELIVERY: 'cdi-cri' },
    mounts: [],
    cdiDevices: [`nvidia.com/gpu=${U(0)}`, `nvidia.com/gpu=${U(2)}`],
  });
  t.same(containerAnswer(shares, { ...base, mode: 'envvar' }), {
    envs: { NVIDIA_VISIBLE_DEVICES: `${U(0)},${U(2)}`, TESSERA_GPU_DELIVERY: 'envvar' },
    mounts: [],
    cdiDevices: [],
  });
  t.same(containerAnswer(shares, { ...base, mode: 'volume-mounts' }), {
    envs: { NVIDIA_VISIBLE_DEVICES: '/var/run/nvidia-container-devices', TESSERA_GPU_DELIVERY: 'volume-mounts' },
    mounts: [
      { containerPath: `/var/run/nvidia-container-devices/${U(0)}`, hostPath: '/dev/null', readOnly: true },
      { containerPath: `/var/run/nvidia-container-devices/${U(2)}`, hostPath: '/dev/null', readOnly: true },
    ],
    cdiDevices: [],
  });
});

t.test('enforcement limits follow the assignment: memory from memoryMiB, compute from milli', async (t) => {
  const paths = { hamiCoreDir: '/opt/hami', mpsPipeDir: '/run/mps' };
  const quarter = [{ gpu: GPUS[1]!, milli: 250, memoryMiB: 20480 }];
  t.same(enforcementEdits('hami-core', quarter, paths), {
    envs: { CUDA_DEVICE_ORDER: 'PCI_BUS_ID', CUDA_DEVICE_MEMORY_LIMIT_0: '20480m', CUDA_DEVICE_SM_LIMIT_0: '25' },
    mounts: [
      { containerPath: '/usr/local/vgpu/libvgpu.so', hostPath: '/opt/hami/libvgpu.so', readOnly: true },
      { containerPath: '/etc/ld.so.preload', hostPath: '/opt/hami/ld.so.preload', readOnly: true },
    ],
  });
  t.same(enforcementEdits('mps', quarter, paths), {
    envs: {
      CUDA_DEVICE_ORDER: 'PCI_BUS_ID',
      CUDA_MPS_PIPE_DIRECTORY: '/run/mps',
      CUDA_MPS_PINNED_DEVICE_MEM_LIMIT: '0=20480M',
      CUDA_MPS_ACTIVE_THREAD_PERCENTAGE: '25',
    },
    mounts: [{ containerPath: '/run/mps', hostPath: '/run/mps', readOnly: false }],
  });
  t.same(enforcementEdits('none', quarter, paths), { envs: {}, mounts: [] });
  const whole = enforcementEdits('hami-core', [{ gpu: GPUS[0]!, milli: 1000, memoryMiB: 81920 }], paths);
  t.equal(whole.envs.CUDA_DEVICE_SM_LIMIT_0, undefined, 'a whole GPU gets no compute limit');
});
