import t from 'tap';
import { readDemand } from '../../../../core/demand.ts';
import { equivalentsOfPod, podEquivalents, withinQuota } from '../../../../core/pools/equivalents.ts';
import { examplePolicy } from '../../../fixtures/admission.ts';
import { pod } from '../../../fixtures/pods.ts';

const policy = examplePolicy();

t.test('GPU-equivalents follow the pool: whole 1, fraction f, MIG slices/7, replica 1/replicas', async (t) => {
  const cases: [string, ReturnType<typeof pod>, number][] = [
    ['whole GPUs', pod('w').annotate('tessera.io/pool', 'sovereign-eu').limit('nvidia.com/gpu', '2'), 2],
    ['a fraction', pod('f').annotate('tessera.io/pool', 'shared-h100').gpuMilli(250), 0.25],
    ['a MIG 3g instance', pod('m').annotate('tessera.io/pool', 'a100-mig').limit('nvidia.com/mig-3g.40gb', '1'), 3 / 7],
    [
      'a time-slice replica',
      pod('r').annotate('tessera.io/pool', 'l4-timesliced').limit('nvidia.com/gpu.shared', '1'),
      0.25,
    ],
    ['no pool: by resources', pod('n').limit('nvidia.com/mig-2g.20gb', '2'), 4 / 7],
    ['a CPU pod', pod('c').cpu('2'), 0],
  ];
  for (const [name, builder, expected] of cases) {
    t.equal(
      Math.round(podEquivalents(readDemand(builder.build()), policy) * 1e6) / 1e6,
      Math.round(expected * 1e6) / 1e6,
      name,
    );
  }
});

t.test('a malformed pod weighs nothing; the quota comparison tolerates float noise', async (t) => {
  t.equal(equivalentsOfPod(pod('bad').annotate('tessera.io/gpu-fraction', 'lots').build(), policy), 0);
  t.equal(withinQuota(0.1 + 0.2, 11.7, 12), true);
  t.equal(withinQuota(11.5, 0.501, 12), false);
});
