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
