import t from 'tap';
import fc from 'fast-check';
import { readNode } from '../../../../core/inventory/node-inventory.ts';
import {
  cpuNode,
  exclusiveH100,
  fractionH100,
  migA100,
  migSingleA100,
  mpsA100,
  node,
  timeSlicedL4,
  TWO_ISLANDS,
} from '../../../fixtures/nodes.ts';

t.test('reads every node mode from GFD labels and allocatable', async (t) => {
  const f = readNode(fractionH100('f', 8, { annotations: { 'tessera.io/gpu-topology': TWO_ISLANDS } }));
  t.match(f, { mode: 'fraction', model: 'H100-80GB-HBM3', usable: true, gpuResource: 'tessera.io/gpu-milli' });
  t.equal(f.gpus.length, 8);
  t.match(f.gpus[5], { index: 5, memoryMiB: 81559, numa: 1, nvlink: 'b' });

  const m = readNode(migA100('m'));
  t.match(m, { mode: 'mig', migStrategy: 'mixed', usable: true });
  t.equal(m.gpus.length, 8);
  t.equal(m.gpus.flatMap((g) => g.mig).length, 32, 'every instance is laid out on a GPU');
  t.same(m.resources, { 'nvidia.com/mig-1g.10gb': 16, 'nvidia.com/mig-2g.20gb': 8, 'nvidia.com/mig-3g.40gb': 8 });

  const s = readNode(migSingleA100('s'));
  t.match(s, {
    mode: 'mig',
    migStrategy: 'single',
    model: 'A100-SXM4-80GB',
    gpuResource: 'nvidia.com/gpu',
    usable: true,
  });
  t.equal(s.gpus.length, 8, '56 x 1g.10gb devices are 8 physical GPUs');

  t.match(readNode(timeSlicedL4('l')), {
    mode: 'time-slicing',
    replicas: 4,
    gpuResource: 'nvidia.com/gpu.shared',
    usable: true,
  });
  t.match(readNode(mpsA100('p')), { mode: 'mps', replicas: 2, gpuResource: 'nvidia.com/gpu', usable: true });
  t.match(readNode(exclusiveH100('e')), { mode: 'exclusive', gpuResource: 'nvidia.com/gpu', usable: true });
  t.match(readNode(cpuNode('c')), { mode: 'none', gpus: [], usable: true });
});

t.test('contradictory or missing labels are reported with a reason, not thrown', async (t) => {
  const noReplicas = readNode(
    node({
      labels: { 'nvidia.com/gpu.product': 'NVIDIA-L4', 'nvidia.com/gpu.sharing-strategy': 'time-slicing' },
      allocatable: { 'nvidia.com/gpu': '8' },
    }),
  );
  t.equal(noReplicas.usable, false);
  t.match(noReplicas.problems.join(), /gpu.replicas is missing/);

  const fractionAndMig = readNode(
    fractionH100('x', 8, {
      labels: { 'nvidia.com/mig.strategy': 'mixed', 'nvidia.com/mig-1g.10gb.count': '7' },
      allocatable: { 'nvidia.com/mig-1g.10gb': '7' },
    }),
  );
  t.equal(fractionAndMig.usable, false);
  t.match(fractionAndMig.problems.join(), /MIG-partitioned/);

  const noCount = readNode(
    node({ labels: { 'tessera.io/sharing': 'fraction', 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' } }),
  );
  t.match(noCount.problems.join(), /no valid nvidia.com\/gpu.count/);

  const badTopology = readNode(
    fractionH100('y', 2, { annotations: { 'tessera.io/gpu-topology': '{"gpus":[{"index":9}]}' } }),
  );
  t.equal(badTopology.usable, true, 'a bad topology annotation is ignored, not fatal');
  t.match(badTopology.warnings.join(), /names GPU index 9/);

  const invalidMig = readNode(
    node({
      labels: { 'nvidia.com/mig.strategy': 'single', 'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB-MIG-INVALID' },
      allocatable: { 'nvidia.com/gpu': '0' },
    }),
  );
  t.equal(invalidMig.usable, false);
  t.match(invalidMig.problems.join(), /invalid MIG configuration/);

  const impossibleMig = readNode(
    node({
      labels: {
        'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB',
        'nvidia.com/gpu.count': '1',
        'nvidia.com/mig.strategy': 'mixed',
      },
      allocatable: { 'nvidia.com/mig-4g.40gb': '2' },
    }),
  );
  t.equal(impossibleMig.usable, false);
  t.match(impossibleMig.problems.join(), /cannot be laid out legally/);
});

t.test('property: any labels, annotations and allocatable never make reading throw', async (t) => {
  const keys = fc.constantFrom(
    'nvidia.com/gpu.product',
    'nvidia.com/gpu.count',
    'nvidia.com/gpu.replicas',
    'nvidia.com/gpu.sharing-strategy',
    'nvidia.com/mig.strategy',
    'nvidia.com/mig-1g.10gb.count',
    'tessera.io/sharing',
    'nvidia.com/gpu.memory',
    'x',
  );
  const values = fc.oneof(
    fc.string(),
    fc.constantFrom(
      'fraction',
      'mixed',
      'single',
      'mps',
      'time-slicing',
      '0',
      '8',
      '-1',
      'NVIDIA-A100-SXM4-80GB',
      'NVIDIA-A100-SXM4-80GB-MIG-3g.40gb',
    ),
  );
  const resources = fc.constantFrom(
    'nvidia.com/gpu',
    'nvidia.com/gpu.shared',
    'nvidia.com/mig-1g.10gb',
    'nvidia.com/mig-9g.99gb',
    'tessera.io/gpu-milli',
    'cpu',
    'memory',
  );
  fc.assert(
    fc.property(
      fc.dictionary(keys, values),
      fc.dictionary(resources, fc.oneof(fc.string(), fc.constantFrom('8', '1k', '0', '56'))),
      fc.option(fc.string()),
      (labels, allocatable, topology) => {
        const n = readNode({
          metadata: {
            name: 'n',
            labels,
            annotations: topology === null ? {} : { 'tessera.io/gpu-topology': topology },
          },
          status: { allocatable },
        });
        return typeof n.usable === 'boolean' && Array.isArray(n.problems);
      },
    ),
    { numRuns: 1000, seed: 11 },
  );
  t.doesNotThrow(() => readNode({}));
  t.equal(readNode({}).usable, false, 'a node without a name is unusable');
});
