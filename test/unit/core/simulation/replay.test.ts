import t from 'tap';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { arrivalOrder, replay } from '../../../../core/simulation/replay.ts';
import { SeededRandom } from '../../../../core/simulation/random.ts';
import { parseTraceNodes, parseTracePods, TraceError, type TracePod } from '../../../../core/simulation/trace.ts';
import { publishedFor } from '../../../../core/simulation/published.ts';
import { STRATEGIES } from '../../../../core/scoring/strategy-registry.ts';
import { fragmentationAware } from '../../../../core/scoring/fragmentation-aware.ts';

const NODES = `sn,cpu_milli,memory_mib,gpu,model
n0,32000,131072,2,T4
n1,32000,131072,2,T4
n2,96000,393216,8,G2
n3,8000,32768,1,P100
`;
const PODS = `name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
p0,4000,8192,1,500,,LS,Running,0,0,0
p1,2000,4096,1,250,,LS,Running,0,0,0
p2,8000,16384,2,1000,,LS,Running,0,0,0
p3,1000,2048,0,0,,BE,Running,0,0,0
p4,6000,8192,1,810,T4|G2,LS,Running,0,0,0
p5,16000,32768,8,1000,,LS,Running,0,0,0
p6,1000,1024,1,1200,,LS,Running,0,0,0
`;

t.test('trace parsing: columns, gpu_spec, the clip of gpu_milli to 1000, and line-numbered errors', async (t) => {
  const nodes = parseTraceNodes(NODES);
  t.equal(nodes.length, 4);
  t.match(nodes[2], { name: 'n2', gpus: 8, model: 'G2', cpuMilli: 96000 });
  const pods = parseTracePods(PODS);
  t.same(pods[4]!.models, ['T4', 'G2']);
  t.equal(pods[6]!.milliPerGpu, 1000);
  t.equal(pods[3]!.gpus, 0);
  t.throws(() => parseTraceNodes('sn,cpu_milli\nx,1\n'), /missing column "memory_mib"/);
  t.throws(() => parseTracePods(PODS.replace('p1,2000', 'p1,2k')), TraceError);
  t.throws(() => parseTracePods(PODS.replace('p1,2000', 'p1,2k')), /line 3: cpu_milli="2k"/);
  const fiveColumns = parseTracePods('name,cpu_milli,memory_mib,num_gpu,gpu_milli\na,1000,10,1,500\n');
  t.equal(fiveColumns[0]!.models, null, 'multigpu files have no gpu_spec column');
});

t.test('tuning resamples up to, and never past, the target share of capacity', async (t) => {
  const pods = parseTracePods(PODS);
  const order = arrivalOrder(pods, 13000, new SeededRandom(1), 1.3);
  const total = order.reduce((s, p) => s + p.gpus * p.milliPerGpu, 0);
  t.ok(total <= 1.3 * 13000, `total ${total} within 130%`);
  t.ok(order.length > pods.length, 'clones were appended');
  const trimmed = arrivalOrder(pods, 1000, new SeededRandom(1), 1.3);
  t.ok(trimmed.reduce((s, p) => s + p.gpus * p.milliPerGpu, 0) <= 1300, 'an over-full list is trimmed');
});

t.test('replay: deterministic per seed, records every arrival, never oversubscribes', async (t) => {
  const nodes = parseTraceNodes(NODES);
  const pods = parseTracePods(PODS);
  const a = replay(nodes, pods, { seed: 42, strategy: fragmentationAware });
  const b = replay(nodes, pods, { seed: 42, strategy: fragmentationAware });
  t.same(a.decisions, b.decisions, 'same seed, same decisions');
  t.equal(a.decisions.length, a.arrivals);
  t.same(Object.keys(a.unallocated), ['80', '90', '95', '100', '110', '120', '130']);
  for (const v of a.unallocatedCurve) t.ok(v >= 0 && v <= 100);
  const model = new Map(nodes.map((n) => [n.name, n.model]));
  for (const d of a.decisions) {
    const p = pods.find((x) => x.name === d.pod)!;
    if (d.node !== null && p.models !== null) t.ok(p.models.includes(model.get(d.node)!), `${d.pod} honours gpu_spec`);
  }
});

t.test('property: for any workload, seed and strategy, no GPU or node is oversubscribed', async (t) => {
  const nodes = parseTraceNodes(NODES);
  const podArb = fc.record({
    gpus: fc.constantFrom(0, 1, 1, 1, 2, 4, 8),
    milli: fc.integer({ min: 1, max: 1000 }),
    cpu: fc.integer({ min: 100, max: 40000 }),
    mem: fc.integer({ min: 1, max: 200000 }),
  });
  fc.assert(
    fc.property(
      fc.array(podArb, { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 0, max: 1000 }),
      fc.constantFrom(...Object.keys(STRATEGIES)),
      (specs, seed, name) => {
        const pods: TracePod[] = specs.map((s, i) => ({
          name: `p${i}`,
          cpuMilli: s.cpu,
          memoryMiB: s.mem,
          gpus: s.gpus,
          milliPerGpu: s.gpus === 0 ? 0 : s.gpus > 1 ? 1000 : s.milli,
          models: null,
        }));
        const run = replay(nodes, pods, { seed, strategy: STRATEGIES[name]! });
        const gpu = new Map<string, number>();
        const cpu = new Map<string, number>();
        const mem = new Map<string, number>();
        const byName = new Map(pods.map((p) => [p.name, p]));
        for (const d of run.decisions) {
          if (d.node === null) continue;
          const p = byName.get(d.pod)!;
          cpu.set(d.node, (cpu.get(d.node) ?? 0) + p.cpuMilli);
          mem.set(d.node, (mem.get(d.node) ?? 0) + p.memoryMiB);
          if (d.gpus.length !== p.gpus) return false;
          for (const g of d.gpus) gpu.set(`${d.node}/${g.index}`, (gpu.get(`${d.node}/${g.index}`) ?? 0) + g.milli);
        }
        const node = new Map(nodes.map((n) => [n.name, n]));
        return (
          [...gpu.values()].every((m) => m <= 1000) &&
          [...cpu].every(([n, c]) => c <= node.get(n)!.cpuMilli) &&
          [...mem].every(([n, m]) => m <= node.get(n)!.memoryMiB)
        );
      },
    ),
    { numRuns: 150, seed: 9 },
  );
  t.pass('the property held for every generated case');
});

t.test('published results are summarised per policy', async (t) => {
  const csv = `workload,sc_policy,tune,seed,total_gpus,0,100\nw,06-FGD,1.3,42,6212,0,95\nw,06-FGD,1.3,43,6212,0,97\nx,06-FGD,1.3,42,6212,0,10\n`;
  const [fgd] = publishedFor(csv, 'w', [100]);
  t.match(fgd, { policy: '06-FGD', seeds: 2, mean: { '100': 4 } });
  t.ok(Math.abs(fgd!.sd['100']! - Math.SQRT2) < 1e-3, 'sd of 3 and 5 is the square root of 2');
});

t.test('the shared openb trace is read in full', async (t) => {
  const dir = new URL('../../../../../shared/data/alibaba-openb/', import.meta.url);
  const nodes = parseTraceNodes(readFileSync(new URL('openb_node_list_gpu_node.csv', dir), 'utf8'));
  const pods = parseTracePods(readFileSync(new URL('openb_pod_list_default.csv', dir), 'utf8'));
  t.equal(nodes.length, 1213);
  t.equal(
    nodes.reduce((s, n) => s + n.gpus, 0),
    6212,
  );
  t.equal(pods.length, 8152);
  t.equal(pods.filter((p) => p.gpus === 0).length, 1088);
});

t.test('a replicated trace is the same cluster and workload N times over, under new names', async (t) => {
  const { replicateTrace } = await import('../../../../core/simulation/trace.ts');
  const nodes = parseTraceNodes(NODES);
  const pods = parseTracePods(PODS);
  const five = replicateTrace(nodes, pods, 5);
  t.equal(five.nodes.length, 5 * nodes.length);
  t.equal(five.pods.length, 5 * pods.length);
  t.equal(new Set(five.nodes.map((n) => n.name)).size, five.nodes.length, 'node names stay unique');
  t.equal(new Set(five.pods.map((p) => p.name)).size, five.pods.length, 'pod names stay unique');
  const gpus = (ns: readonly { gpus: number }[]) => ns.reduce((s, n) => s + n.gpus, 0);
  t.equal(gpus(five.nodes), 5 * gpus(nodes));
  t.same(replicateTrace(nodes, pods, 1).nodes, nodes, 'x1 is the trace itself');
  t.throws(() => replicateTrace(nodes, pods, 0), /expected a whole number >= 1/);
});
