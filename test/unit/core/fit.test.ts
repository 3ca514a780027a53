import t from 'tap';
import fc from 'fast-check';
import { readDemand } from '../../../core/demand.ts';
import { fit, type FitContext, type Placement } from '../../../core/fit.ts';
import { readNode, type NodeInventory } from '../../../core/inventory/node-inventory.ts';
import { Ledger } from '../../../core/ledger.ts';
import type { KubePod } from '../../../core/kube-objects.ts';
import {
  exclusiveH100,
  fractionH100,
  migA100,
  migSingleA100,
  mpsA100,
  timeSlicedL4,
  TWO_ISLANDS,
  cpuNode,
} from '../../fixtures/nodes.ts';
import { pod } from '../../fixtures/pods.ts';
import { newAllocation } from '../../../core/allocation.ts';

const ctx = (tenant: string | null, isolated: string[] = []): FitContext => ({
  tenant,
  isolatedTenants: new Set(isolated),
});

function commit(ledger: Ledger, p: KubePod, placement: Placement, tenant: string | null = null): void {
  const d = readDemand(p);
  ledger.add(newAllocation({ pod: d, tenant, node: placement.node, holding: placement }));
}

function place(ledger: Ledger, node: NodeInventory, p: KubePod, c: FitContext = ctx(null)): Placement | string {
  const r = fit(node, ledger.usage(node.name), readDemand(p), c);
  if (!r.ok) return r.reason.code;
  commit(ledger, p, r.placements[0]!, c.tenant);
  return r.placements[0]!;
}

t.test('fraction node: shares of one GPU with proportional memory; four quarters fill a GPU', async (t) => {
  const node = readNode(fractionH100('f', 1));
  const ledger = new Ledger();
  for (let i = 0; i < 4; i++)
    t.type(place(ledger, node, pod(`q${i}`).gpuMilli(250).build()), 'object', `quarter ${i} fits`);
  t.equal(place(ledger, node, pod('q5').gpuMilli(50).build()), 'GpuCompute');
  t.equal(ledger.usage('f').milliOn(0), 1000);
  t.ok(ledger.usage('f').memoryOn(0) <= 81559, 'memory is never oversubscribed by rounding');
});

t.test('fraction node: explicit memory, memory-only demand, and too-large memory', async (t) => {
  const node = readNode(fractionH100('f', 1));
  const ledger = new Ledger();
  const mem = place(
    ledger,
    node,
    pod('m').gpuMilli(100).annotate('tessera.io/gpu-memory', '70Gi').annotate('tessera.io/gpu-fraction', '0.1').build(),
  ) as Placement;
  t.same(mem.gpus, [{ index: 0, milli: 100, memoryMiB: 71680 }]);
  t.equal(place(ledger, node, pod('m2').gpuMilli(200).build()), 'GpuMemory', 'compute is free but memory is not');
  const other = new Ledger();
  const memOnly = place(
    other,
    node,
    pod('mo').gpuMilli(1).annotate('tessera.io/gpu-memory', '40Gi').build(),
  ) as Placement;
  t.equal(memOnly.gpus[0]!.milli, 503, 'a memory request alone reserves the matching share of compute');
  t.equal(
    place(new Ledger(), node, pod('big').gpuMilli(500).annotate('tessera.io/gpu-memory', '100Gi').build()),
    'GpuMemoryTooLarge',
  );
});

t.test('fraction node: whole GPUs respect NVLink islands', async (t) => {
  const node = readNode(fractionH100('f', 8, { annotations: { 'tessera.io/gpu-topology': TWO_ISLANDS } }));
  const ledger = new Ledger();
  const two = place(
    ledger,
    node,
    pod('two').gpuMilli(2000).annotate('tessera.io/topology', 'nvlink').build(),
  ) as Placement;
  t.same(
    two.gpus.map((g) => g.index),
    [0, 1],
  );
  t.equal(two.topology, 1);
  const four = place(
    ledger,
    node,
    pod('four').gpuMilli(4000).annotate('tessera.io/topology', 'nvlink').build(),
  ) as Placement;
  t.same(
    four.gpus.map((g) => g.index),
    [4, 5, 6, 7],
    'the 4-GPU pod gets the intact island',
  );
  t.equal(
    place(ledger, node, pod('x').gpuMilli(3000).annotate('tessera.io/topology', 'nvlink').build()),
    'GpusExhausted',
  );
  t.equal(
    place(new Ledger(), node, pod('y').gpuMilli(6000).annotate('tessera.io/topology', 'nvlink').build()),
    'TopologyImpossible',
  );
  const crossing = place(new Ledger(), node, pod('z').gpuMilli(6000).build()) as Placement;
  t.equal(crossing.gpus.length, 6, 'without a requirement a pod may span islands');
  t.ok(crossing.topology < 1);
  t.equal(place(new Ledger(), node, pod('n').gpuMilli(9000).build()), 'TooManyGpus');
});

t.test('fraction node: tenant isolation per GPU', async (t) => {
  const node = readNode(fractionH100('f', 1));
  const ledger = new Ledger();
  place(ledger, node, pod('a1').gpuMilli(250).build(), ctx('research'));
  t.equal(
    place(ledger, node, pod('p1').gpuMilli(250).build(), ctx('payments', ['payments'])),
    'TenantIsolation',
    'isolated tenant refuses a shared GPU',
  );
  t.type(
    place(ledger, node, pod('a2').gpuMilli(250).build(), ctx('research', ['payments'])),
    'object',
    'open tenants share',
  );
  const other = new Ledger();
  place(other, node, pod('p2').gpuMilli(250).build(), ctx('payments', ['payments']));
  t.equal(
    place(other, node, pod('a3').gpuMilli(250).build(), ctx('research', ['payments'])),
    'TenantIsolation',
    'and nobody joins an isolated tenant',
  );
  t.type(
    place(other, node, pod('p3').gpuMilli(250).build(), ctx('payments', ['payments'])),
    'object',
    'the same tenant shares with itself',
  );
});

t.test('device-plugin nodes: MIG, replicas, whole GPUs, and the reasons', async (t) => {
  const mig = readNode(migA100('m', 1));
  const ledger = new Ledger();
  t.type(place(ledger, mig, pod('m1').limit('nvidia.com/mig-3g.40gb', '1').build()), 'object');
  t.equal(place(ledger, mig, pod('m2').limit('nvidia.com/mig-3g.40gb', '1').build()), 'MigProfileExhausted');
  t.equal(place(ledger, mig, pod('m3').limit('nvidia.com/mig-7g.80gb', '1').build()), 'MigProfileAbsent');
  t.equal(place(ledger, mig, pod('m4').gpuMilli(500).build()), 'ModeMismatch');
  const single = readNode(migSingleA100('s'));
  t.type(
    place(
      new Ledger(),
      single,
      pod('s1').limit('nvidia.com/gpu', '1').annotate('tessera.io/mig-profile', '1g.10gb').build(),
    ),
    'object',
  );
  t.equal(
    place(
      new Ledger(),
      single,
      pod('s2').limit('nvidia.com/gpu', '1').annotate('tessera.io/mig-profile', '3g.40gb').build(),
    ),
    'MigProfileAbsent',
  );

  const ts = readNode(timeSlicedL4('l'));
  const tsLedger = new Ledger();
  for (let i = 0; i < 16; i++)
    place(tsLedger, ts, pod(`r${i}`).limit('nvidia.com/gpu.shared', '1').build(), ctx('research'));
  t.equal(
    place(tsLedger, ts, pod('r16').limit('nvidia.com/gpu.shared', '1').build(), ctx('research')),
    'ReplicasExhausted',
  );
  const isolated = new Ledger();
  place(isolated, ts, pod('x').limit('nvidia.com/gpu.shared', '1').build(), ctx('research'));
  t.equal(
    place(isolated, ts, pod('y').limit('nvidia.com/gpu.shared', '1').build(), ctx('payments', ['payments'])),
    'TenantIsolation',
    'time-slicing isolates per node',
  );

  const mps = readNode(mpsA100('p'));
  t.equal(
    place(new Ledger(), mps, pod('p').limit('nvidia.com/gpu', '1').annotate('tessera.io/gpu-memory', '30Gi').build()),
    'GpuMemoryTooLarge',
    'an MPS replica carries 1/replicas of the memory',
  );
  const ex = readNode(exclusiveH100('e', 2));
  const exLedger = new Ledger();
  t.type(place(exLedger, ex, pod('e1').limit('nvidia.com/gpu', '2').build()), 'object');
  t.equal(place(exLedger, ex, pod('e2').limit('nvidia.com/gpu', '1').build()), 'GpusExhausted');
  t.equal(place(new Ledger(), readNode(cpuNode()), pod('c').limit('nvidia.com/gpu', '1').build()), 'NoGpus');
  t.equal(
    place(
      new Ledger(),
      ex,
      pod('mm').limit('nvidia.com/gpu', '1').annotate('tessera.io/gpu-model', 'A100-SXM4-80GB').build(),
    ),
    'ModelMismatch',
  );
  t.equal(place(new Ledger(), ex, pod('cpu').limit('nvidia.com/gpu', '1').cpu('1000').build()), 'InsufficientCpu');
  const r = fit(
    ex,
    new Ledger().usage('e'),
    readDemand(pod('mm').limit('nvidia.com/gpu', '1').annotate('tessera.io/gpu-model', 'A100-SXM4-80GB').build()),
  );
  t.ok(
    !r.ok && r.reason.unresolvable && /allows A100-SXM4-80GB, node e has H100-80GB-HBM3/.test(r.reason.message),
    'reasons carry a human message',
  );
});

t.test('property: committing every placement fit offers never oversubscribes anything', async (t) => {
  const nodes = [
    readNode(fractionH100('f', 4)),
    readNode(migA100('m', 2)),
    readNode(timeSlicedL4('l')),
    readNode(exclusiveH100('e', 4)),
  ];
  const request = fc.oneof(
    fc.integer({ min: 1, max: 1000 }).map((m) => ({ milli: m })),
    fc.constantFrom(2000, 3000, 4000).map((m) => ({ milli: m })),
    fc.record({ milli: fc.integer({ min: 1, max: 1000 }), memoryGi: fc.integer({ min: 1, max: 90 }) }),
    fc
      .constantFrom(
        'nvidia.com/mig-1g.10gb',
        'nvidia.com/mig-2g.20gb',
        'nvidia.com/mig-3g.40gb',
        'nvidia.com/gpu.shared',
        'nvidia.com/gpu',
      )
      .map((r) => ({ resource: r })),
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(request, fc.constantFrom('a', 'b', 'c'), fc.nat(3)), { maxLength: 60 }), (steps) => {
      const ledger = new Ledger();
      steps.forEach(([req, tenant, n], i) => {
        const b = pod(`p${i}`).cpu('100m');
        if ('resource' in req) b.limit(req.resource, '1');
        else b.gpuMilli(req.milli);
        if ('memoryGi' in req) b.annotate('tessera.io/gpu-memory', `${req.memoryGi}Gi`);
        const node = nodes[n]!;
        const c = ctx(tenant, ['c']);
        const r = fit(node, ledger.usage(node.name), readDemand(b.build()), c);
        if (r.ok) commit(ledger, b.build(), r.placements[r.placements.length - 1]!, tenant);
      });
      for (const node of nodes) {
        const u = ledger.usage(node.name);
        for (const g of node.gpus) {
          if (u.milliOn(g.index) > 1000 || u.memoryOn(g.index) > g.memoryMiB) return false;
          const tenants = [...u.tenantsOn(g.index).keys()];
          if (tenants.includes('c') && tenants.length > 1) return false;
        }
        for (const [resource, used] of u.resources) if (used > (node.resources[resource] ?? 0)) return false;
        if ([...u.nodeTenants.keys()].includes('c') && u.nodeTenants.size > 1) return false;
        if (u.cpuMilli > node.cpuMilli) return false;
      }
      return true;
    }),
    { numRuns: 300, seed: 3 },
  );
  t.pass('the property held for every generated case');
});

t.test('property: fit is deterministic', async (t) => {
  const node = readNode(fractionH100('f', 8, { annotations: { 'tessera.io/gpu-topology': TWO_ISLANDS } }));
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 1000 }), { maxLength: 20 }),
      fc.integer({ min: 1, max: 8 }),
      (prefill, gpus) => {
        const ledger = new Ledger();
        for (const [i, m] of prefill.entries()) place(ledger, node, pod(`p${i}`).gpuMilli(m).build());
        const d = readDemand(
          pod('x')
            .gpuMilli(gpus * 1000)
            .build(),
        );
        const first = JSON.stringify(fit(node, ledger.usage('f'), d));
        return first === JSON.stringify(fit(node, ledger.usage('f'), d));
      },
    ),
    { numRuns: 200, seed: 5 },
  );
  t.pass('the property held for every generated case');
});
