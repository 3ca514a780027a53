import t from 'tap';
import { readSlices } from '../../../../core/dra/inventory.ts';
import type { KubeResourceClaim } from '../../../../core/dra/objects.ts';
import type { KubePod } from '../../../../core/kube-objects.ts';
import { evaluateNodes, podContext, quotaReason } from '../../../../core/scheduling/evaluate.ts';
import { SchedulingState } from '../../../../core/scheduling/state.ts';
import { chooseVictims } from '../../../../core/scheduling/preemption.ts';
import { fragmentationAware } from '../../../../core/scoring/fragmentation-aware.ts';
import { scoringContext } from '../../../../core/scoring/strategy.ts';
import { examplePolicy, NAMESPACES } from '../../../fixtures/admission.ts';
import {
  claim,
  claimTemplate,
  DRA_POLICY_TEXT,
  exactly,
  gpuDevice,
  migDevice,
  nodeSlice,
  NVIDIA_CLASSES,
  profileSelector,
} from '../../../fixtures/dra.ts';
import { fractionH100, node } from '../../../fixtures/nodes.ts';
import { pod } from '../../../fixtures/pods.ts';

const policy = examplePolicy(DRA_POLICY_TEXT);
const draNode = (name: string) => node({ name, labels: { 'tessera.io/pool': 'dra-h100' } });
const gpus = (name: string, n: number) =>
  nodeSlice(
    name,
    Array.from({ length: n }, (_, i) => gpuDevice(name, i)),
  );
const migs = (name: string, layout: string[][]) =>
  nodeSlice(
    name,
    layout.flatMap((profiles, minor) => profiles.map((p, i) => migDevice(name, minor, p, i))),
  );

/** A claim allocated to devices of a node (what kube-scheduler's DRA plugin writes in PreBind). */
function allocated(c: KubeResourceClaim, nodeName: string, devices: string[]): KubeResourceClaim {
  return {
    ...c,
    status: {
      allocation: {
        devices: {
          results: devices.map((device) => ({ request: 'gpu', driver: 'gpu.nvidia.com', pool: nodeName, device })),
        },
      },
    },
  };
}

function cluster(): SchedulingState {
  const state = new SchedulingState();
  state.setPolicy(policy);
  for (const ns of NAMESPACES) state.upsertNamespace(ns);
  for (const c of NVIDIA_CLASSES) state.dra.upsertClass(c);
  state.dra.upsertTemplate(claimTemplate('two', 'research-a', [exactly('gpu', 'gpu.nvidia.com', { count: 2 })]));
  state.dra.upsertTemplate(
    claimTemplate('mig-1g', 'research-a', [
      exactly('gpu', 'mig.nvidia.com', { selectors: profileSelector('1g.10gb') }),
    ]),
  );
  for (const n of ['d0', 'd1', 'm0', 'bare']) state.upsertNode(draNode(n));
  state.upsertNode(fractionH100('h', 2, { labels: { 'tessera.io/pool': 'shared-h100' } }));
  state.dra.upsertSlice(gpus('d0', 4));
  state.dra.upsertSlice(gpus('d1', 8));
  state.dra.upsertSlice(
    migs('m0', [
      ['1g.10gb', '1g.10gb', '2g.20gb'],
      ['1g.10gb', '1g.10gb', '2g.20gb'],
    ]),
  );
  return state;
}

/** A pod whose template claim the resourceclaim controller has generated (as kube-scheduler sees it). */
function claimPod(name: string, template: string, state: SchedulingState): KubePod {
  const p = pod(name)
    .ns('research-a')
    .annotate('tessera.io/pool', 'dra-h100')
    .limit('tessera.io/dra-claims', '1')
    .build();
  p.spec!.resourceClaims = [{ name: 'gpu', resourceClaimTemplateName: template }];
  const generated = `${name}-gpu-x1`;
  p.status = { phase: 'Pending', resourceClaimStatuses: [{ name: 'gpu', resourceClaimName: generated }] };
  const spec = state.dra.resourceClaimTemplate('research-a', template)!.spec!.spec!;
  state.dra.upsertClaim({ ...claim(generated, 'research-a', []), spec });
  return p;
}

function verdicts(state: SchedulingState, p: KubePod, names: string[]) {
  const ctx = podContext(state, p);
  if (!ctx.ok) throw new Error(ctx.reason.message);
  return evaluateNodes(state, ctx.pod, names, fragmentationAware, scoringContext(), null);
}

t.test('ResourceSlices become per-node GPU inventory: GPUs, MIG devices and their parents', async (t) => {
  const nodes = readSlices([
    gpus('d0', 4),
    migs('m0', [['1g.10gb', '2g.20gb'], ['3g.40gb']]),
    {
      ...gpus('old', 2),
      spec: { ...gpus('old', 2).spec!, pool: { name: 'old', generation: 1, resourceSliceCount: 1 } },
    },
    {
      ...gpus('old', 8),
      metadata: { name: 'old-2' },
      spec: { ...gpus('old', 8).spec!, pool: { name: 'old', generation: 2, resourceSliceCount: 1 } },
    },
    { ...gpus('nic', 2), spec: { ...gpus('nic', 2).spec!, driver: 'nic.example.com' } },
  ]);
  t.match(nodes.get('d0'), { model: 'H100-80GB-HBM3', gpuMemoryMiB: 81920, physicalGpus: 4 });
  t.equal(nodes.get('d0')!.devices[0]!.key, 'gpu.nvidia.com/d0/gpu-0');
  t.match(nodes.get('m0'), { physicalGpus: 2 });
  t.same(
    nodes.get('m0')!.devices.map((d) => [d.kind, d.profile, d.parentUuid]),
    [
      ['mig', '1g.10gb', 'GPU-m0-0'],
      ['mig', '2g.20gb', 'GPU-m0-0'],
      ['mig', '3g.40gb', 'GPU-m0-1'],
    ],
  );
  t.equal(nodes.get('old')!.devices.length, 8, 'only the newest generation of a pool counts');
  t.notOk(nodes.has('nic'), 'devices of other drivers are not GPU inventory');
});

t.test('a claim pod is placed on DRA nodes of its pool, never refused as GPU-less', async (t) => {
  const state = cluster();
  const [d0, d1, bare, h] = verdicts(state, claimPod('p', 'two', state), ['d0', 'd1', 'bare', 'h']);
  t.equal(d0?.feasible, true);
  t.equal(d1?.feasible, true);
  t.ok(d0!.score > d1!.score, 'binpack: 2 of 4 GPUs fills d0 more than 2 of 8 fills d1');
  t.match(bare?.reason, { code: 'NoGpus', message: /publishes no GPUs through DRA/ });
  t.match(h?.reason, { code: 'NodeNotInPool' });
  const native = verdicts(
    state,
    pod('n').ns('research-a').annotate('tessera.io/pool', 'dra-h100').limit('nvidia.com/gpu', '3').build(),
    ['d0'],
  );
  t.equal(native[0]?.feasible, true, 'nvidia.com/gpu on a node whose GPUs only DRA publishes (KEP-5004)');
});

t.test('what allocated claims hold is taken', async (t) => {
  const state = cluster();
  state.dra.upsertClaim(
    allocated(claim('held', 'research-b', [exactly('gpu', 'gpu.nvidia.com', { count: 3 })]), 'd0', [
      'gpu-0',
      'gpu-1',
      'gpu-2',
    ]),
  );
  const [d0, d1] = verdicts(state, claimPod('p', 'two', state), ['d0', 'd1']);
  t.match(d0?.reason, { code: 'GpusExhausted', message: /needs 2 whole GPU\(s\); node d0 has fewer free/ });
  t.equal(d1?.feasible, true);
  const big = verdicts(
    state,
    pod('b').ns('research-a').annotate('tessera.io/pool', 'dra-h100').limit('nvidia.com/gpu', '9').build(),
    ['d1'],
  );
  t.match(big[0]?.reason, { code: 'TooManyGpus', unresolvable: true });
  state.dra.removeClaim('research-b', 'held');
  t.equal(verdicts(state, claimPod('p2', 'two', state), ['d0'])[0]?.feasible, true, 'a released claim frees its GPUs');
});

t.test('MIG devices by profile, packed onto GPUs already in MIG use', async (t) => {
  const state = cluster();
  const p = claimPod('m', 'mig-1g', state);
  const [m0, d0] = verdicts(state, p, ['m0', 'd0']);
  t.equal(m0?.feasible, true);
  t.match(d0?.reason, { code: 'MigProfileAbsent', unresolvable: true });
  const fresh = m0!.score;
  state.dra.upsertClaim(
    allocated(claim('busy', 'research-b', [exactly('gpu', 'mig.nvidia.com')]), 'm0', ['gpu-1-mig-1g10gb-0']),
  );
  state.upsertNode(draNode('m1'));
  state.dra.upsertSlice(
    migs('m1', [
      ['1g.10gb', '1g.10gb', '2g.20gb'],
      ['1g.10gb', '1g.10gb', '2g.20gb'],
    ]),
  );
  const [busy, pristine] = verdicts(state, claimPod('m2', 'mig-1g', state), ['m0', 'm1']);
  t.ok(busy!.score > pristine!.score, 'a GPU already split for MIG before a pristine one');
  t.ok(busy!.score > fresh, 'and a fuller node ranks higher');
  const native = verdicts(
    state,
    pod('n').ns('research-a').annotate('tessera.io/pool', 'dra-h100').limit('nvidia.com/mig-2g.20gb', '2').build(),
    ['m0'],
  );
  t.equal(native[0]?.feasible, true);
  const three = verdicts(
    state,
    pod('n3').ns('research-a').annotate('tessera.io/pool', 'dra-h100').limit('nvidia.com/mig-2g.20gb', '3').build(),
    ['m0'],
  );
  t.match(three[0]?.reason, { code: 'MigProfileExhausted' });
});

t.test('a pod whose shared claim is allocated goes where its devices are', async (t) => {
  const state = cluster();
  state.dra.upsertClaim(allocated(claim('shared', 'research-a', [exactly('gpu', 'gpu.nvidia.com')]), 'd1', ['gpu-5']));
  const p = pod('s')
    .ns('research-a')
    .annotate('tessera.io/pool', 'dra-h100')
    .limit('tessera.io/dra-claims', '1')
    .build();
  p.spec!.resourceClaims = [{ name: 'gpu', resourceClaimName: 'shared' }];
  const [d0, d1] = verdicts(state, p, ['d0', 'd1']);
  t.match(d0?.reason, { code: 'ClaimElsewhere', message: /ResourceClaim shared of the pod is allocated on node d1/ });
  t.equal(d1?.feasible, true);
});

t.test('quota at bind counts the pod own claims', async (t) => {
  const state = cluster();
  const ctx = podContext(state, claimPod('q', 'two', state));
  if (!ctx.ok) throw new Error('readable');
  t.equal(ctx.pod.draEquivalents, 2);
  for (let i = 0; i < 6; i++) {
    const running = claimPod(`r${i}`, 'two', state);
    running.spec!.nodeName = 'd1';
    running.status = { ...running.status, phase: 'Running' };
    state.upsertPod(running);
  }
  t.match(quotaReason(state, ctx.pod), {
    code: 'QuotaExceeded',
    message: /tenant research holds 12 of its 12 GPU-equivalents; this pod needs 2/,
  });
});

t.test('at bind, the devices of the claim kube-scheduler made for nvidia.com/gpu are the pod own', async (t) => {
  const state = cluster();
  const p = pod('n').ns('research-a').annotate('tessera.io/pool', 'dra-h100').limit('nvidia.com/gpu', '4').build();
  t.equal(verdicts(state, p, ['d0'])[0]?.feasible, true, 'before PreBind: 4 free GPUs on d0');
  state.dra.upsertClaim(
    allocated(
      claim('n-extended-resources-abcde', 'research-a', [exactly('gpu', 'gpu.nvidia.com', { count: 4 })]),
      'd0',
      ['gpu-0', 'gpu-1', 'gpu-2', 'gpu-3'],
    ),
  );
  p.status = {
    phase: 'Pending',
    extendedResourceClaimStatus: {
      resourceClaimName: 'n-extended-resources-abcde',
      requestMappings: [
        { containerName: 'main', resourceName: 'nvidia.com/gpu', requestName: 'container-0-request-0' },
      ],
    },
  };
  const [d0, d1] = verdicts(state, p, ['d0', 'd1']);
  t.equal(d0?.feasible, true, 'its own allocation does not crowd it out');
  t.match(d1?.reason, { code: 'ClaimElsewhere' });
});

/** A running pod on `nodeName` whose claim holds `devices` there, reserved for it (and for `alsoFor`, if given). */
function holder(
  state: SchedulingState,
  name: string,
  nodeName: string,
  devices: string[],
  priority: number,
  alsoFor: string[] = [],
): KubePod {
  const p = pod(name)
    .ns('research-a')
    .uid(name)
    .annotate('tessera.io/pool', 'dra-h100')
    .limit('tessera.io/dra-claims', '1')
    .boundTo(nodeName)
    .build();
  p.spec!.priority = priority;
  const c = allocated(
    claim(`${name}-gpu`, 'research-a', [exactly('gpu', 'gpu.nvidia.com', { count: 1 })]),
    nodeName,
    devices,
  );
  c.status = {
    ...c.status,
    reservedFor: [name, ...alsoFor].map((uid) => ({ resource: 'pods', name: uid, uid })),
  };
  state.dra.upsertClaim(c);
  state.upsertPod(p);
  return p;
}

t.test('preempt on a DRA pool picks victims by the devices their claims hold', async (t) => {
  const state = cluster();
  holder(state, 'low-a', 'd0', ['gpu-0'], 0);
  holder(state, 'low-b', 'd0', ['gpu-1'], 0);
  holder(state, 'pair', 'd0', ['gpu-2', 'gpu-3'], 10);
  const preemptor = claimPod('urgent', 'two', state);
  preemptor.spec!.priority = 100;
  const ctx = podContext(state, preemptor);
  if (!ctx.ok) throw new Error(ctx.reason.message);
  t.equal(verdicts(state, preemptor, ['d0'])[0]?.feasible, false, 'all four GPUs are held');
  const victims = chooseVictims(state, { ctx: ctx.pod, priority: 100 }, 'd0');
  t.same(
    victims?.map((v) => v.uid),
    ['pair'],
    'one victim whose claim frees two devices, rather than two victims of lower priority with one each',
  );
  t.same(
    chooseVictims(state, { ctx: ctx.pod, priority: 5 }, 'd0')
      ?.map((v) => v.uid)
      .sort(),
    ['low-a', 'low-b'],
  );
  t.equal(chooseVictims(state, { ctx: ctx.pod, priority: 0 }, 'd0'), null, 'nothing of lower priority: no candidate');
  t.same(chooseVictims(state, { ctx: ctx.pod, priority: 100 }, 'd1'), [], 'd1 has room: no victims');
});

t.test('a claim another running pod also uses is not released by preempting one of them', async (t) => {
  const state = cluster();
  holder(state, 'a', 'd0', ['gpu-0', 'gpu-1'], 0, ['b']);
  const b = pod('b')
    .ns('research-a')
    .uid('b')
    .annotate('tessera.io/pool', 'dra-h100')
    .limit('tessera.io/dra-claims', '1')
    .boundTo('d0')
    .build();
  b.spec!.priority = 50;
  state.upsertPod(b);
  holder(state, 'c', 'd0', ['gpu-2', 'gpu-3'], 20);
  t.same([...state.dra.releasedBy(new Set(['a']))], [], 'b still uses the shared claim');
  t.same([...state.dra.releasedBy(new Set(['a', 'b']))], ['research-a/a-gpu']);
  const preemptor = claimPod('urgent', 'two', state);
  const ctx = podContext(state, preemptor);
  if (!ctx.ok) throw new Error(ctx.reason.message);
  t.same(
    chooseVictims(state, { ctx: ctx.pod, priority: 30 }, 'd0')?.map((v) => v.uid),
    ['c'],
    'c alone frees two',
  );
  t.same(
    chooseVictims(state, { ctx: ctx.pod, priority: 25 }, 'd0')?.map((v) => v.uid),
    ['c'],
    'b (50) is out of reach, so a, which alone releases nothing, is spared too',
  );
});
