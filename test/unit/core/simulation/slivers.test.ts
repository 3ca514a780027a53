import t from 'tap';
import { readFileSync } from 'node:fs';
import { newAllocation } from '../../../../core/allocation.ts';
import { Ledger } from '../../../../core/ledger.ts';
import { traceNodeInventory, tracePodDemand, replay } from '../../../../core/simulation/replay.ts';
import { sliverDecomposition } from '../../../../core/simulation/slivers.ts';
import { parseTraceNodes, parseTracePods } from '../../../../core/simulation/trace.ts';
import { fragmentationAware } from '../../../../core/scoring/fragmentation-aware.ts';
import { typicalShapes } from '../../../../core/scoring/workload-profile.ts';

const NODES = parseTraceNodes(`sn,cpu_milli,memory_mib,gpu,model
a,32000,131072,2,T4
b,4000,131072,2,T4
`);
const shape = { cpuMilli: 8000, memoryMiB: 1024, gpus: 1, milliPerGpu: 500, models: null };

t.test('sliver decomposition: stranded nodes, whole GPUs and slivers by 100 m', async (t) => {
  const nodes = NODES.map(traceNodeInventory);
  const ledger = new Ledger();
  const place = (node: string, gpu: number, milli: number, cpuMilli: number) =>
    ledger.add(
      newAllocation({
        pod: tracePodDemand(
          { name: `p${gpu}${node}`, cpuMilli, memoryMiB: 1, gpus: 1, milliPerGpu: milli, models: null },
          `${node}${gpu}`,
        ),
        tenant: null,
        node,
        holding: { gpus: [{ index: gpu, milli, memoryMiB: 0 }], resources: {}, sharing: true },
      }),
    );
  place('a', 0, 810, 1000);
  place('b', 0, 300, 1000);
  const d = sliverDecomposition(
    nodes,
    nodes.map((n) => ledger.usage(n.name)),
    typicalShapes([shape]),
  );
  t.equal(d.capacityMilli, 4000);
  t.equal(d.strandedMilli, 1700, 'b has 3000 m CPU free: no 8000 m pod fits, its 700 + 1000 m free are stranded');
  t.equal(d.strandedGpus, 2);
  t.equal(d.wholeGpus, 1, "a's second GPU");
  t.equal(d.sliverGpus[1], 1, "a's first GPU has 190 m free");
  t.equal(d.sliverMilli[1], 190);
  t.equal(
    d.sliverMilli.reduce((x, y) => x + y, 0),
    190,
  );
});

t.test('replay records the decomposition at 100 % arrived, and it adds up to the unallocated capacity', async (t) => {
  const dir = new URL('../../../../../shared/data/alibaba-openb/', import.meta.url);
  const nodes = parseTraceNodes(readFileSync(new URL('openb_node_list_gpu_node.csv', dir), 'utf8')).slice(0, 60);
  const pods = parseTracePods(readFileSync(new URL('openb_pod_list_default.csv', dir), 'utf8')).slice(0, 400);
  const r = replay(nodes, pods, { seed: 42, strategy: fragmentationAware });
  const d = r.slivers!;
  t.ok(d !== null, 'arrivals reach capacity (tuned to 130 %)');
  const free = d.strandedMilli + d.wholeGpus * 1000 + d.sliverMilli.reduce((x, y) => x + y, 0);
  const unallocatedAtCrossing = (free / d.capacityMilli) * 100;
  t.ok(
    Math.abs(unallocatedAtCrossing - r.unallocated['100']!) < 2,
    `free capacity ${unallocatedAtCrossing.toFixed(2)} % is the unallocated share at 100 % (${r.unallocated['100']!.toFixed(2)} %, a bin mean)`,
  );
  t.equal(d.capacityMilli, r.capacityMilli);
});
