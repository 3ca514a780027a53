import t from 'tap';
import type { V1Lease } from '@kubernetes/client-node';
import { pino } from 'pino';
import { LeaderElector, type LeaseApi } from '../../../extender/leader.ts';

// The Lease as kube-apiserver keeps it: create fails when it exists, replace fails on a stale resourceVersion.
function leaseStore(): LeaseApi & { lease: V1Lease | null } {
  let version = 0;
  const copy = (l: V1Lease): V1Lease => JSON.parse(JSON.stringify(l)) as V1Lease;
  const store = {
    lease: null as V1Lease | null,
    async readNamespacedLease() {
      if (!store.lease) throw Object.assign(new Error('not found'), { code: 404 });
      return copy(store.lease);
    },
    async createNamespacedLease({ body }: { body: V1Lease }) {
      if (store.lease) throw Object.assign(new Error('exists'), { code: 409 });
      store.lease = { ...copy(body), metadata: { ...body.metadata, resourceVersion: String(++version) } };
      return copy(store.lease);
    },
    async replaceNamespacedLease({ body }: { body: V1Lease }) {
      if (body.metadata?.resourceVersion !== store.lease?.metadata?.resourceVersion)
        throw Object.assign(new Error('conflict'), { code: 409 });
      store.lease = { ...copy(body), metadata: { ...body.metadata, resourceVersion: String(++version) } };
      return copy(store.lease);
    },
  };
  return store as unknown as LeaseApi & { lease: V1Lease | null };
}

const log = pino({ level: 'silent' });

function replica(api: LeaseApi, identity: string, unfit: { reason: string | null }) {
  return new LeaderElector(api, { namespace: 'tessera-system', name: 'ext', identity, log, unfit: () => unfit.reason });
}

t.test('a replica that could not serve neither takes the lease nor keeps it', async (t) => {
  const api = leaseStore();
  const a = { reason: 'no valid policy: policy.yaml: 3:1 bad indentation' as string | null };
  const b = { reason: null as string | null };
  const ra = replica(api, 'a', a);
  const rb = replica(api, 'b', b);

  await ra.tryOnce();
  t.equal(api.lease, null, 'a replica without a policy does not create the lease');
  t.equal(ra.isLeader, false);
  await rb.tryOnce();
  t.equal(api.lease?.spec?.holderIdentity, 'b', 'the healthy replica leads');

  a.reason = null;
  await ra.tryOnce();
  t.equal(ra.isLeader, false, 'a repaired replica waits while the leader renews');
  await rb.tryOnce();
  t.equal(rb.isLeader, true);

  b.reason = 'has not synced its pods cache from the Kubernetes API (pending)';
  await rb.tryOnce();
  t.equal(rb.isLeader, false, 'the leader that can no longer serve steps down');
  t.equal(api.lease?.spec?.holderIdentity, 'b', 'the lease still names it');
  t.equal(api.lease?.spec?.leaseDurationSeconds, 1, 'but it has run out, so the standby need not wait 15 s');
  await ra.tryOnce();
  t.equal(ra.isLeader, true, 'the standby takes over at its next attempt');
  t.equal(api.lease?.spec?.holderIdentity, 'a');
  t.equal(api.lease?.spec?.leaseTransitions, 1, 'one transition recorded');
});

t.test('stepping down and stopping tell the server', async (t) => {
  const api = leaseStore();
  const changes: boolean[] = [];
  const unfit = { reason: null as string | null };
  const r = new LeaderElector(api, {
    namespace: 'tessera-system',
    name: 'ext',
    identity: 'a',
    log,
    unfit: () => unfit.reason,
    onChange: (lead) => changes.push(lead),
  });
  await r.tryOnce();
  unfit.reason = 'no valid policy';
  await r.tryOnce();
  await r.tryOnce();
  unfit.reason = null;
  await r.tryOnce();
  await r.stop();
  t.same(changes, [true, false, true, false]);
  t.equal(api.lease?.spec?.leaseDurationSeconds, 1, 'stop gives the lease up');
});

t.test('a replica whose pod is not Ready does not take the lease, but a leader keeps it', async (t) => {
  const api = leaseStore();
  const notReady = { a: null as string | null, b: 'its pod tessera-system/b is not Ready yet' as string | null };
  const make = (identity: 'a' | 'b') =>
    new LeaderElector(api, {
      namespace: 'tessera-system',
      name: 'ext',
      identity,
      leaseSeconds: 3,
      log,
      mayNotTake: () => notReady[identity],
    });
  const a = make('a');
  await a.tryOnce();
  t.equal(a.isLeader, true, 'a Ready replica takes a free lease');
  notReady.a = 'its pod tessera-system/a is not Ready yet';
  await a.tryOnce();
  t.equal(a.isLeader, true, 'the leader renews although its pod is not Ready (readiness is not leadership)');

  // The leader's process dies; a restarted container of its pod has the same identity and is not Ready yet.
  const restarted = make('a');
  const b = make('b');
  api.lease!.spec!.renewTime = new Date(Date.now() - 10_000) as never;
  await restarted.tryOnce();
  await b.tryOnce();
  t.equal(api.lease?.spec?.holderIdentity, 'a', 'nobody took the lease: neither pod is Ready');
  t.equal(restarted.isLeader, false, 'the restarted container does not take back its own lease while not Ready');
  notReady.b = null;
  await restarted.tryOnce();
  await b.tryOnce();
  t.equal(b.isLeader, true, 'the Ready standby takes over');
  t.equal(api.lease?.spec?.holderIdentity, 'b');
  notReady.a = null;
  await restarted.tryOnce();
  t.equal(restarted.isLeader, false, 'and keeps it once the other pod is Ready again');
});

t.test(
  'a leader renews in one call on the Lease it wrote, and finds out when another replica wrote since',
  async (t) => {
    const api = leaseStore();
    const calls: string[] = [];
    const counted: LeaseApi = {
      readNamespacedLease: (a) => {
        calls.push('read');
        return api.readNamespacedLease(a);
      },
      createNamespacedLease: (a) => {
        calls.push('create');
        return api.createNamespacedLease(a);
      },
      replaceNamespacedLease: (a) => {
        calls.push('replace');
        return api.replaceNamespacedLease(a);
      },
    } as LeaseApi;
    const a = new LeaderElector(counted, {
      namespace: 'tessera-system',
      name: 'ext',
      identity: 'a',
      leaseSeconds: 3,
      log,
    });
    await a.tryOnce();
    t.same(calls, ['read', 'create'], 'takes the free lease');
    calls.length = 0;
    await a.tryOnce();
    await a.tryOnce();
    t.same(calls, ['replace', 'replace'], 'each renewal is one write, no read');
    const renewTime = (l: V1Lease | null) => new Date(l!.spec!.renewTime!).getTime();
    t.ok(renewTime(api.lease) > 0, 'the renewal is written');

    // Another replica took the lease (as after an expiry): the next renewal conflicts, reads, and steps down.
    const b = new LeaderElector(api, { namespace: 'tessera-system', name: 'ext', identity: 'b', leaseSeconds: 3, log });
    api.lease!.spec!.renewTime = new Date(Date.now() - 10_000) as never;
    await b.tryOnce();
    t.equal(api.lease?.spec?.holderIdentity, 'b');
    calls.length = 0;
    await a.tryOnce();
    t.same(calls, ['replace', 'read'], 'the conflicting write is followed by a read');
    t.equal(a.isLeader, false, 'and the old leader knows it no longer leads');
    t.equal(api.lease?.spec?.holderIdentity, 'b', 'the new holder is untouched');
  },
);
