import t from 'tap';
import { mutateRequest } from '../../../../core/admission/mutate.ts';
import { migProfileFor } from '../../../../core/pools/gpu-plan.ts';
import { MIG_GEOMETRIES } from '../../../../core/catalog/mig-geometry.ts';
import { pod } from '../../../fixtures/pods.ts';
import { admit, examplePolicy, podRequest, view } from '../../../fixtures/admission.ts';

const policy = examplePolicy();
const labelled = (name: string, namespace = 'research-a') =>
  pod(name).ns(namespace).label('team', 'vision').label('cost-center', '1234');

t.test('a fraction pod is moved to Tessera, pinned to its pool and wired to the assignment', async (t) => {
  const a = admit(labelled('f').annotate('tessera.io/gpu-fraction', '0.25').build(), policy);
  t.equal(a.denial, null);
  const spec = a.pod.spec!;
  t.equal(spec.schedulerName, 'tessera-scheduler');
  t.equal(a.pod.metadata!.annotations!['tessera.io/pool'], 'shared-h100');
  t.equal(a.pod.metadata!.annotations!['tessera.io/policy-revision'], policy.revision);
  t.equal(a.pod.metadata!.labels!['tessera.io/tenant'], 'research');
  t.same(spec.containers![0]!.resources!.limits, { 'tessera.io/gpu-milli': '250' });
  t.same(spec.containers![0]!.env, [
    {
      name: 'NVIDIA_VISIBLE_DEVICES',
      valueFrom: { fieldRef: { fieldPath: "metadata.annotations['tessera.io/visible-devices']" } },
    },
  ]);
  t.same(spec.tolerations, [{ key: 'tessera.io/pool', operator: 'Equal', value: 'shared-h100', effect: 'NoSchedule' }]);
  t.same((spec.affinity as any).nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms, [
    { matchExpressions: [{ key: 'tessera.io/pool', operator: 'In', values: ['shared-h100'] }] },
  ]);
});

t.test('mutation is idempotent: a second pass over its own output patches nothing', async (t) => {
  for (const b of [
    labelled('a').annotate('tessera.io/gpu-fraction', '0.5'),
    labelled('b').annotate('tessera.io/pool', 'a100-mig').annotate('tessera.io/gpu-fraction', '0.25'),
    labelled('c').limit('nvidia.com/gpu', '2'),
    labelled('d').cpu('1'),
    labelled('e').annotate('tessera.io/pool', 'l4-timesliced').annotate('tessera.io/gpu-fraction', '0.25'),
  ]) {
    const first = admit(b.build(), policy);
    t.equal(first.denial, null, `${b.build().metadata!.name} admitted`);
    t.ok(first.patch.length > 0);
    const again = mutateRequest(podRequest(first.pod), policy, view());
    t.same(again.patch, [], `${b.build().metadata!.name}: no second patch`);
  }
});

t.test('user affinity is merged, never replaced', async (t) => {
  const p = labelled('aff').annotate('tessera.io/gpu-fraction', '0.5').build();
  p.spec!.affinity = {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [
          { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] },
          { matchExpressions: [{ key: 'zone', operator: 'In', values: ['b'] }] },
        ],
      },
      preferredDuringSchedulingIgnoredDuringExecution: [
        { weight: 1, preference: { matchExpressions: [{ key: 'ssd', operator: 'Exists' }] } },
      ],
    },
  };
  const a = admit(p, policy);
  const na = (a.pod.spec!.affinity as any).nodeAffinity;
  t.same(
    na.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.map((term: any) =>
      term.matchExpressions.map((e: any) => e.key),
    ),
    [
      ['zone', 'tessera.io/pool'],
      ['zone', 'tessera.io/pool'],
    ],
    'the pool is ANDed into every term',
  );
  t.equal(na.preferredDuringSchedulingIgnoredDuringExecution.length, 1, 'preferences kept');
});

t.test('each fractionMode turns the intent into the right resources', async (t) => {
  const mig = admit(
    labelled('m').annotate('tessera.io/pool', 'a100-mig').annotate('tessera.io/gpu-fraction', '0.25').build(),
    policy,
  );
  t.same(
    mig.pod.spec!.containers![0]!.resources!.limits,
    { 'nvidia.com/mig-2g.20gb': '1' },
    '0.25 needs 2 of 7 compute and 2 of 8 memory slices',
  );
  t.equal(mig.pod.spec!.containers![0]!.env, undefined, 'the device plugin wires MIG devices itself');
  const ts = admit(
    labelled('ts').annotate('tessera.io/pool', 'l4-timesliced').annotate('tessera.io/gpu-fraction', '0.25').build(),
    policy,
  );
  t.same(ts.pod.spec!.containers![0]!.resources!.limits, { 'nvidia.com/gpu.shared': '1' });
  t.equal(ts.denial, null);
  const whole = admit(labelled('w').annotate('tessera.io/gpu-count', '2').build(), policy);
  t.same(
    whole.pod.spec!.containers![0]!.resources!.limits,
    { 'tessera.io/gpu-milli': '2000' },
    'the first pool that can meet it is used',
  );
  const native = admit(labelled('n').limit('nvidia.com/gpu', '1').build(), policy);
  t.same(
    native.pod.spec!.containers![0]!.resources!.limits,
    { 'tessera.io/gpu-milli': '1000' },
    'native nvidia.com/gpu is accepted as a count',
  );
  const sov = admit(
    pod('s')
      .ns('pay')
      .label('team', 'risk')
      .label('cost-center', '4321')
      .annotate('tessera.io/pool', 'sovereign-eu')
      .annotate('tessera.io/gpu-count', '1')
      .build(),
    policy,
  );
  t.same(sov.pod.spec!.containers![0]!.resources!.limits, { 'nvidia.com/gpu': '1' });
  t.same(
    (
      sov.pod.spec!.affinity as any
    ).nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions.map(
      (e: any) => e.key,
    ),
    ['tessera.io/pool', 'topology.kubernetes.io/region'],
  );
  t.equal(migProfileFor(MIG_GEOMETRIES['80GB']!, 1000, null)?.name, '7g.80gb');
  t.equal(
    migProfileFor(MIG_GEOMETRIES['80GB']!, null, 15000)?.name,
    '1g.20gb',
    'memory alone picks the smallest profile with that memory',
  );
  t.equal(migProfileFor(MIG_GEOMETRIES['80GB']!, 100, null)?.name, '1g.10gb');
});

t.test('containers without a GPU, in GPU and non-GPU pods, get NVIDIA_VISIBLE_DEVICES=void', async (t) => {
  const p = labelled('sidecar')
    .annotate('tessera.io/gpu-fraction', '0.5')
    .container({ name: 'log', image: 'registry.example/log:1' })
    .init({ name: 'init', image: 'registry.example/init:1' })
    .build();
  const a = admit(p, policy);
  t.same(a.pod.spec!.containers![1]!.env, [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'void' }]);
  t.same(a.pod.spec!.initContainers![0]!.env, [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'void' }]);
  const cpu = admit(pod('cpu').ns('plain').cpu('1').build(), policy);
  t.same(cpu.pod.spec!.containers![0]!.env, [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'void' }]);
  t.equal(
    cpu.pod.metadata!.annotations!['tessera.io/policy-revision'],
    undefined,
    'pods outside tenants are not stamped',
  );
});

t.test('an ask no pool can meet is denied at mutation with each pool’s reason', async (t) => {
  const a = admit(
    labelled('big').annotate('tessera.io/pool', 'l4-timesliced').annotate('tessera.io/gpu-fraction', '0.5').build(),
    policy,
  );
  t.match(a.denial, /at most 1\/4 of a GPU; ask for tessera.io\/gpu-fraction <= 0.25/);
  const b = admit(pod('p').ns('pay').annotate('tessera.io/mig-profile', '3g.40gb').build(), policy);
  t.match(
    b.denial,
    /no pool of tenant payments-ml can give 1 x MIG 3g.40gb \(sovereign-eu: pool sovereign-eu gives whole GPUs only/,
  );
  const c = admit(
    labelled('c').annotate('tessera.io/pool', 'sovereign-eu').annotate('tessera.io/gpu-count', '1').build(),
    policy,
  );
  t.match(c.denial, /tessera.io\/pool=sovereign-eu is not a pool of tenant research/);
});

t.test('a GPU asked for by an init container stays with that container', async (t) => {
  const p = pod('warm')
    .ns('pay')
    .label('team', 'risk')
    .label('cost-center', '4321')
    .annotate('tessera.io/pool', 'sovereign-eu')
    .build();
  p.spec!.containers![0]!.image = 'registry.eu.acme.example/app:1';
  p.spec!.initContainers = [
    { name: 'warmup', image: 'registry.eu.acme.example/warm:1', resources: { limits: { 'nvidia.com/gpu': '1' } } },
  ];
  const a = admit(p, policy);
  t.equal(a.denial, null);
  t.same(a.pod.spec!.initContainers![0]!.resources!.limits, { 'nvidia.com/gpu': '1' }, 'resources kept as written');
  t.equal(a.pod.spec!.initContainers![0]!.env, undefined, 'the GPU init container is not blinded');
  t.same(
    a.pod.spec!.containers![0]!.env,
    [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'void' }],
    'the app container, which asked for no GPU, is',
  );
  const fraction = pod('warm2').ns('research-a').label('team', 'v').label('cost-center', '1234').build();
  fraction.spec!.initContainers = [
    { name: 'warmup', image: 'registry.example/warm:1', resources: { limits: { 'nvidia.com/gpu': '1' } } },
  ];
  const f = admit(fraction, policy);
  t.same(
    f.pod.spec!.initContainers![0]!.resources!.limits,
    { 'tessera.io/gpu-milli': '1000' },
    'translated in place on a fraction pool',
  );
  t.match(f.pod.spec!.initContainers![0]!.env, [
    {
      name: 'NVIDIA_VISIBLE_DEVICES',
      valueFrom: { fieldRef: { fieldPath: "metadata.annotations['tessera.io/visible-devices']" } },
    },
  ]);
});
