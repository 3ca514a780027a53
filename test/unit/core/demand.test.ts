import t from 'tap';
import { DemandError, readDemand, wantsGpu } from '../../../core/demand.ts';
import { pod } from '../../fixtures/pods.ts';

t.test('effective requests follow Kubernetes: max(app + sidecars, init peaks) + overhead', async (t) => {
  const p = pod('p').cpu('1').memory('1Gi').build();
  p.spec!.initContainers = [
    { name: 'sidecar', restartPolicy: 'Always', resources: { requests: { cpu: '500m', memory: '256Mi' } } },
    { name: 'init', resources: { requests: { cpu: '4', memory: '512Mi' } } },
  ];
  p.spec!.overhead = { cpu: '100m' };
  const d = readDemand(p);
  t.equal(d.cpuMilli, 4600, 'init peak 4 + sidecar 0.5 + overhead 0.1');
  t.equal(d.memoryMiB, 1280, 'app 1Gi + sidecar 256Mi beats init 512Mi + sidecar');
});

t.test('GPU resources and annotations become a demand', async (t) => {
  const f = readDemand(
    pod('f')
      .gpuMilli(250)
      .annotate('tessera.io/gpu-memory', '10Gi')
      .annotate('tessera.io/gpu-fraction', '0.25')
      .build(),
  );
  t.same(f.fraction, { gpus: 1, milliPerGpu: 250, memoryMiB: 10240, memoryOnly: false });
  t.equal(f.intent.milli, 250);
  const whole = readDemand(pod('w').gpuMilli(4000).annotate('tessera.io/topology', 'nvlink').build());
  t.same(whole.fraction, { gpus: 4, milliPerGpu: 1000, memoryMiB: null, memoryOnly: false });
  t.equal(whole.topology, 'nvlink');
  const mig = readDemand(
    pod('m')
      .limit('nvidia.com/mig-2g.20gb', '1')
      .annotate('tessera.io/gpu-model', 'NVIDIA-A100-SXM4-80GB|H100-80GB-HBM3')
      .build(),
  );
  t.same(mig.gpuResources, { 'nvidia.com/mig-2g.20gb': 1 });
  t.same(mig.models, ['NVIDIA-A100-SXM4-80GB', 'H100-80GB-HBM3']);
  t.equal(wantsGpu(readDemand(pod('n').cpu('1').build())), false);
  t.equal(wantsGpu(readDemand(pod('a').annotate('tessera.io/gpu-fraction', '0.5').build())), true);
  const initOnly = pod('i').build();
  initOnly.spec!.initContainers = [{ name: 'warm', resources: { limits: { 'nvidia.com/gpu': '1' } } }];
  t.same(
    readDemand(initOnly).gpuResources,
    { 'nvidia.com/gpu': 1 },
    'GPU requests in init containers count (HAMi#2640)',
  );
});

t.test('invalid input is a DemandError naming the field and the fix', async (t) => {
  const cases: [string, ReturnType<typeof pod>, RegExp][] = [
    [
      'fraction above 1',
      pod('a').annotate('tessera.io/gpu-fraction', '1.5'),
      /outside 0 < f <= 1; for more than one GPU use tessera.io\/gpu-count/,
    ],
    ['fraction zero', pod('a').annotate('tessera.io/gpu-fraction', '0'), /outside 0 < f <= 1/],
    ['fraction not a number', pod('a').annotate('tessera.io/gpu-fraction', 'half'), /is not a number; write a share/],
    ['memory not a quantity', pod('a').annotate('tessera.io/gpu-memory', '10 gigs'), /is not a Kubernetes quantity/],
    ['count not whole', pod('a').annotate('tessera.io/gpu-count', '1.5'), /must be a whole number of GPUs/],
    [
      'count with fraction',
      pod('a').annotate('tessera.io/gpu-count', '2').annotate('tessera.io/gpu-fraction', '0.5'),
      /either a share of one GPU or whole GPUs/,
    ],
    ['bad profile', pod('a').annotate('tessera.io/mig-profile', 'big'), /is not a MIG profile/],
    [
      'profile with fraction',
      pod('a').annotate('tessera.io/mig-profile', '1g.10gb').annotate('tessera.io/gpu-fraction', '0.5'),
      /names the exact slice/,
    ],
    ['bad topology', pod('a').annotate('tessera.io/topology', 'pcie'), /must be nvlink, numa or none/],
    ['empty model list', pod('a').annotate('tessera.io/gpu-model', '|'), /names no model/],
    ['milli not multiple', pod('a').gpuMilli(1500), /not a multiple of 1000/],
    [
      'milli mixed with nvidia',
      pod('a').gpuMilli(500).limit('nvidia.com/gpu', '1'),
      /either Tessera fractions or device-plugin GPUs/,
    ],
    [
      'request differs from limit',
      pod('a').limit('nvidia.com/gpu', '2').request('nvidia.com/gpu', '1'),
      /requests equal to limits/,
    ],
    ['fractional nvidia.com/gpu', pod('a').limit('nvidia.com/gpu', '0.5'), /whole, non-negative/],
    ['bad cpu', pod('a').cpu('lots'), /CPU or memory request unreadable/],
  ];
  for (const [name, builder, message] of cases) {
    t.throws(() => readDemand(builder.build()), message, name);
    try {
      readDemand(builder.build());
    } catch (e) {
      t.ok(e instanceof DemandError && e.field.length > 0, `${name}: typed error with a field`);
    }
  }
});
