import t from 'tap';
import type { KubePod } from '../../../../core/kube-objects.ts';
import { checkInvariants } from '../../../../core/invariants/check.ts';
import { readClusterSnapshot } from '../../../../core/invariants/cluster-snapshot.ts';
import { examplePolicy, NAMESPACES } from '../../../fixtures/admission.ts';
import { fractionH100, timeSlicedL4 } from '../../../fixtures/nodes.ts';
import { pod } from '../../../fixtures/pods.ts';

const policy = examplePolicy();

function fractionPod(name: string, ns: string, node: string, gpu: number, milli: number, assignedNode = node): KubePod {
  return pod(name)
    .ns(ns)
    .gpuMilli(milli)
    .annotate(
      'tessera.io/assignment',
      JSON.stringify({ node: assignedNode, gpus: [{ index: gpu, milli, memoryMiB: 0 }] }),
    )
    .annotate('tessera.io/visible-devices', String(gpu))
    .boundTo(node)
    .build();
}

const snapshot = (pods: KubePod[]) => ({
  time: '2026-11-27T00:00:00Z',
  nodes: [fractionH100('h', 2), timeSlicedL4('l')],
  pods,
  namespaces: NAMESPACES,
});

t.test('a healthy cluster has no violations; finished pods hold nothing', async (t) => {
  const pods = [fractionPod('a', 'research-a', 'h', 0, 500), fractionPod('b', 'research-a', 'h', 0, 500)];
  const done = fractionPod('c', 'research-a', 'h', 0, 500);
  done.status = { phase: 'Succeeded' };
  t.same(checkInvariants(snapshot([...pods, done]), policy), []);
});

t.test('each invariant is caught with its subject', async (t) => {
  const over = [fractionPod('a', 'research-a', 'h', 1, 600), fractionPod('b', 'research-b', 'h', 1, 600)];
  t.match(checkInvariants(snapshot(over), policy), [
    { invariant: 'gpu-overcommit', subject: 'h/gpu1', message: /1200 milli/ },
  ]);

  const isolated = [fractionPod('a', 'research-a', 'h', 0, 250), fractionPod('p', 'pay', 'h', 0, 250)];
  t.match(checkInvariants(snapshot(isolated), policy), [{ invariant: 'tenant-isolation', subject: 'h/gpu0' }]);

  const moved = [fractionPod('a', 'research-a', 'h', 0, 250, 'elsewhere')];
  t.match(checkInvariants(snapshot(moved), policy), [{ invariant: 'assignment', message: /names node elsewhere/ }]);
  const unassigned = pod('u').ns('research-a').gpuMilli(250).boundTo('h').build();
  t.match(checkInvariants(snapshot([unassigned]), policy), [
    { invariant: 'assignment', message: /no tessera.io\/assignment/ },
  ]);

  const replicas = Array.from({ length: 17 }, (_, i) =>
    pod(`r${i}`).ns('research-a').limit('nvidia.com/gpu.shared', '1').boundTo('l').build(),
  );
  t.match(checkInvariants(snapshot(replicas), policy), [
    {
      invariant: 'node-allocatable',
      subject: 'l',
      message: /holds 17 nvidia.com\/gpu.shared against an allocatable of 16/,
    },
  ]);

  const quota = Array.from({ length: 13 }, (_, i) => fractionPod(`q${i}`, 'research-a', 'big', 0, 1000));
  const big = fractionH100('big', 16);
  const found = checkInvariants({ ...snapshot(quota), nodes: [big] }, policy).filter(
    (v) => v.invariant === 'tenant-quota',
  );
  t.match(found, [
    { subject: 'research', message: /holds 13 GPU-equivalents in non-terminated pods, over its quota of 12/ },
  ]);
});

t.test('quota is the contract: every non-terminated pod of the tenant, bound or still pending', async (t) => {
  const big = fractionH100('big', 16);
  const bound = Array.from({ length: 11 }, (_, i) => fractionPod(`q${i}`, 'research-a', 'big', i, 1000));
  const pending = [0, 1].map((i) =>
    pod(`p${i}`)
      .ns(i ? 'research-a' : 'research-b')
      .annotate('tessera.io/pool', 'shared-h100')
      .gpuMilli(600)
      .build(),
  );
  const quota = (pods: KubePod[]) =>
    checkInvariants({ ...snapshot(pods), nodes: [big] }, policy).filter((v) => v.invariant === 'tenant-quota');
  t.match(quota([...bound, ...pending]), [{ subject: 'research', message: /holds 12\.2 GPU-equivalents/ }]);
  const failed = structuredClone(pending[1]!);
  failed.status = { phase: 'Failed' };
  t.same(quota([...bound, pending[0]!, failed]), [], 'a terminated pod holds nothing');
  const deleting = structuredClone(pending[1]!);
  deleting.metadata!.deletionTimestamp = '2026-11-27T00:00:30Z';
  t.same(quota([...bound, pending[0]!, deleting]), [], 'nor does one being deleted, as admission counts it');
});

t.test('a memory-only share matches its assignment when it took its memory share of the GPU', async (t) => {
  // 70Gi on an H100 (81559 MiB): 879 milli, whatever the (least-share) request says.
  const memoryOnly = (milli: number) =>
    pod('m')
      .ns('research-a')
      .annotate('tessera.io/gpu-memory', '70Gi')
      .annotate('tessera.io/pool', 'shared-h100')
      .gpuMilli(499)
      .annotate('tessera.io/assignment', JSON.stringify({ node: 'h', gpus: [{ index: 0, milli, memoryMiB: 71680 }] }))
      .annotate('tessera.io/visible-devices', '0')
      .boundTo('h')
      .build();
  t.same(checkInvariants(snapshot([memoryOnly(879)]), policy), []);
  t.match(checkInvariants(snapshot([memoryOnly(499)]), policy), [
    { invariant: 'assignment', message: /asks for 1 x 71680 MiB \(at least 499m\)/ },
  ]);
});

t.test('snapshots are read strictly', async (t) => {
  t.match(readClusterSnapshot({ nodes: [], pods: [] }), /"namespaces" must be an array/);
  t.match(readClusterSnapshot({ time: 'yesterday', nodes: [], pods: [], namespaces: [] }), /RFC 3339/);
  t.same(typeof readClusterSnapshot(snapshot([])), 'object');
});
