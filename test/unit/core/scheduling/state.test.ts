import t from 'tap';
import { SchedulingState } from '../../../../core/scheduling/state.ts';
import { examplePolicy, NAMESPACES } from '../../../fixtures/admission.ts';
import { allocation } from '../../../fixtures/allocations.ts';
import { fractionH100, migA100, timeSlicedL4 } from '../../../fixtures/nodes.ts';
import { pod } from '../../../fixtures/pods.ts';

const assignment = (node: string, index: number, milli: number) =>
  JSON.stringify({ node, gpus: [{ index, milli, memoryMiB: 1000 }] });

function cluster(): SchedulingState {
  const state = new SchedulingState();
  state.setPolicy(examplePolicy());
  for (const ns of NAMESPACES) state.upsertNamespace(ns);
  state.upsertNode(fractionH100('h', 2));
  state.upsertNode(migA100('a', 1));
  state.upsertNode(timeSlicedL4('l'));
  return state;
}

t.test('a bound fraction pod holds its assignment; finishing, failing or deletion releases it', async (t) => {
  for (const end of ['Succeeded', 'Failed', 'deleted'] as const) {
    const state = cluster();
    const running = pod('f')
      .ns('research-a')
      .gpuMilli(500)
      .annotate('tessera.io/pool', 'shared-h100')
      .annotate('tessera.io/assignment', assignment('h', 1, 500))
      .boundTo('h')
      .build();
    state.upsertPod(running);
    t.equal(state.ledger.usage('h').milliOn(1), 500, 'held while running');
    t.equal(state.ledger.tenantEquivalents('research'), 0.5, 'counted against the tenant in GPU-equivalents');
    if (end === 'deleted') state.removePod('uid-f');
    else state.upsertPod({ ...running, status: { phase: end } });
    t.equal(state.ledger.usage('h').milliOn(1), 0, `${end}: GPU released`);
    t.equal(state.ledger.tenantEquivalents('research'), 0, `${end}: quota released`);
  }
});

t.test('a terminating pod keeps its GPUs until it is gone', async (t) => {
  const state = cluster();
  const p = pod('m')
    .ns('research-a')
    .limit('nvidia.com/mig-3g.40gb', '1')
    .annotate('tessera.io/pool', 'a100-mig')
    .boundTo('a')
    .build();
  state.upsertPod(p);
  t.equal(state.ledger.usage('a').resources.get('nvidia.com/mig-3g.40gb'), 1);
  state.upsertPod({ ...p, metadata: { ...p.metadata, deletionTimestamp: '2026-01-01T00:00:00Z' } });
  t.equal(
    state.ledger.usage('a').resources.get('nvidia.com/mig-3g.40gb'),
    1,
    'the container may still run during its grace period',
  );
  state.removePod('uid-m');
  t.equal(state.ledger.usage('a').resources.get('nvidia.com/mig-3g.40gb'), undefined);
});

t.test('time-sliced replicas are shared holdings, released like any other', async (t) => {
  const state = cluster();
  state.upsertPod(
    pod('r')
      .ns('research-a')
      .limit('nvidia.com/gpu.shared', '1')
      .annotate('tessera.io/pool', 'l4-timesliced')
      .boundTo('l')
      .build(),
  );
  const held = state.ledger.get('uid-r');
  t.equal(held?.sharing, true);
  t.equal(held?.equivalents, 0.25, 'a replica of a 4-replica pool is a quarter of a GPU');
  state.upsertPod(
    pod('r').ns('research-a').limit('nvidia.com/gpu.shared', '1').boundTo('l').phase('Succeeded').build(),
  );
  t.equal(state.ledger.size, 0);
});

t.test('an assumed placement survives the pending pod until it expires or the pod is seen bound', async (t) => {
  const state = cluster();
  state.assume(
    allocation('p').uid('uid-p').ns('research-a').tenant('research').on('h').gpu(0, 250).assumedUntil(1_000).build(),
  );
  state.upsertPod(pod('p').ns('research-a').gpuMilli(250).build());
  t.equal(state.ledger.usage('h').milliOn(0), 250, 'still pending: the assumption stays');
  t.same(
    state.expire(999).map((a) => a.uid),
    [],
    'not yet expired',
  );
  t.same(
    state.expire(1_000).map((a) => a.uid),
    ['uid-p'],
    'expired at its time',
  );
  t.equal(state.ledger.usage('h').milliOn(0), 0);
});

t.test('an unreadable assignment is a problem, charged CPU and memory only', async (t) => {
  const state = cluster();
  state.upsertPod(
    pod('bad').ns('research-a').gpuMilli(500).annotate('tessera.io/assignment', '{"node":').boundTo('h').build(),
  );
  t.match(state.problems.get('uid-bad'), /assignment/);
  t.equal(state.ledger.usage('h').milliOn(0) + state.ledger.usage('h').milliOn(1), 0, 'no GPU guessed');
  t.equal(state.ledger.get('uid-bad')?.gpus.length, 0);
  state.upsertPod(
    pod('bad')
      .ns('research-a')
      .gpuMilli(500)
      .annotate('tessera.io/assignment', assignment('h', 0, 500))
      .boundTo('h')
      .build(),
  );
  t.equal(state.problems.has('uid-bad'), false, 'a repaired record clears the problem');
});

t.test('the state version moves with nodes, namespaces and the policy, not with pods', async (t) => {
  const state = cluster();
  const v = state.version;
  state.upsertPod(pod('x').ns('research-a').cpu('1').boundTo('h').build());
  t.equal(state.version, v);
  state.upsertNamespace({ metadata: { name: 'research-a', labels: { 'tessera.io/tenant': 'payments-ml' } } });
  t.ok(state.version > v, 'a tenant label change');
  const w = state.version;
  state.upsertNamespace({ metadata: { name: 'research-a', labels: { 'tessera.io/tenant': 'payments-ml' } } });
  t.equal(state.version, w, 'an unchanged namespace does not invalidate verdicts');
});

t.test('what pods hold against quota follows the policy and the namespace tenant', async (t) => {
  // An extender that starts while the policy files are broken has no policy: pods count 0 GPU-equivalents until one
  // loads. Then they must count, or bind's quota check would let the tenant past its quota.
  const state = new SchedulingState();
  state.setPolicy(null);
  for (const ns of NAMESPACES) state.upsertNamespace(ns);
  state.upsertNode(fractionH100('h', 2));
  state.upsertNode(timeSlicedL4('l'));
  state.upsertPod(
    pod('f')
      .ns('research-a')
      .gpuMilli(500)
      .annotate('tessera.io/pool', 'shared-h100')
      .annotate('tessera.io/assignment', assignment('h', 1, 500))
      .boundTo('h')
      .build(),
  );
  state.upsertPod(
    pod('r')
      .ns('research-a')
      .limit('nvidia.com/gpu.shared', '1')
      .annotate('tessera.io/pool', 'l4-timesliced')
      .boundTo('l')
      .build(),
  );
  const done = pod('d')
    .ns('research-a')
    .gpuMilli(250)
    .annotate('tessera.io/assignment', assignment('h', 0, 250))
    .boundTo('h')
    .build();
  state.upsertPod({ ...done, status: { phase: 'Succeeded' } });
  t.equal(state.ledger.tenantEquivalents('research'), 0, 'no policy, no equivalents');
  state.setPolicy(examplePolicy());
  t.equal(state.ledger.tenantEquivalents('research'), 0.75, 'half a GPU and a quarter-GPU replica, once it loads');
  t.equal(state.ledger.usage('h').milliOn(1), 500, 'the GPUs held are unchanged');
  t.equal(state.ledger.usage('h').milliOn(0), 0, 'a finished pod stays released');
  state.upsertNamespace({ metadata: { name: 'research-a', labels: { 'tessera.io/tenant': 'payments-ml' } } });
  t.equal(state.ledger.tenantEquivalents('research'), 0, 'relabelled: no longer research');
  t.equal(state.ledger.tenantEquivalents('payments-ml'), 0.75, 'counted against the new tenant');
  state.removeNamespace('research-a');
  t.equal(state.ledger.tenantEquivalents('payments-ml'), 0, 'a namespace gone: its pods belong to no tenant');
});

t.test(
  'a node status that changes nothing fit reads keeps the cached verdicts; a real change drops them',
  async (t) => {
    const state = cluster();
    const before = state.version;
    const heartbeat = fractionH100('h', 2) as ReturnType<typeof fractionH100> & { status: Record<string, unknown> };
    heartbeat.status.conditions = [{ type: 'Ready', status: 'True', lastHeartbeatTime: '2026-12-07T20:00:00Z' }];
    heartbeat.metadata!.resourceVersion = '99';
    const kept = state.nodes.get('h');
    t.equal(state.upsertNode(heartbeat), kept, 'the same inventory');
    t.equal(state.version, before, 'no verdict is invalidated');
    const grown = fractionH100('h', 4);
    t.equal(state.upsertNode(grown).gpus.length, 4, 'more GPUs are read');
    t.equal(state.version, before + 1, 'and every cached verdict is dropped');
    const tainted = fractionH100('h', 4);
    tainted.spec = { taints: [{ key: 'maintenance', effect: 'NoSchedule' }] };
    t.same(state.upsertNode(tainted).taints, [{ key: 'maintenance', effect: 'NoSchedule' }]);
    t.equal(state.version, before + 2);
  },
);
