import t from 'tap';
import type { Allocation } from '../../../core/allocation.ts';
import { Ledger } from '../../../core/ledger.ts';
import { allocation } from '../../fixtures/allocations.ts';

const alloc = (uid: string, extra: Partial<Allocation> = {}): Allocation => ({
  ...allocation(uid).tenant('a').cpuMemory(1000, 1024).gpu(0, 250, 1000).build(),
  ...extra,
});

t.test('aggregates per node and forgets idempotently', async (t) => {
  const ledger = new Ledger();
  ledger.add(alloc('p1'));
  ledger.add(alloc('p2', { gpus: [{ index: 3, milli: 500, memoryMiB: 2000 }], tenant: 'b', resources: {} }));
  const u = ledger.usage('n1');
  t.equal(u.milliOn(0), 250);
  t.equal(u.milliOn(3), 500);
  t.equal(u.cpuMilli, 2000);
  t.same([...u.tenantsOn(3).keys()], ['b']);
  const generation = u.generation;
  t.ok(ledger.remove('p2'));
  t.equal(ledger.remove('p2'), undefined, 'removing twice is a no-op');
  t.equal(u.milliOn(3), 0);
  t.equal(u.tenantsOn(3).size, 0);
  t.ok(u.generation > generation, 'changes bump the generation');
  ledger.add(alloc('p1', { gpus: [{ index: 1, milli: 100, memoryMiB: 10 }] }));
  t.equal(u.milliOn(0), 0, 're-adding a pod replaces its earlier allocation');
  t.equal(u.milliOn(1), 100);
  t.equal(ledger.size, 1);
});

t.test('assumed reservations expire at the time passed in', async (t) => {
  const ledger = new Ledger();
  ledger.add(alloc('a', { assumedUntil: 100 }));
  ledger.add(alloc('b', { assumedUntil: null }));
  t.same(ledger.expire(99), []);
  t.same(
    ledger.expire(100).map((a) => a.uid),
    ['a'],
  );
  t.equal(ledger.usage('n1').pods, 1);
  const copy = ledger.clone();
  copy.remove('b');
  t.equal(ledger.usage('n1').pods, 1, 'a clone is independent');
});

t.test('device-plugin resources and node-level tenants', async (t) => {
  const ledger = new Ledger();
  ledger.add(alloc('r', { gpus: [], resources: { 'nvidia.com/gpu.shared': 1 }, tenant: 'x' }));
  t.equal(ledger.usage('n1').resources.get('nvidia.com/gpu.shared'), 1);
  t.same([...ledger.usage('n1').nodeTenants.keys()], ['x']);
  ledger.remove('r');
  t.equal(ledger.usage('n1').resources.size, 0);
});
