import t from 'tap';
import { gpuHoursFromSnapshots } from '../../../../core/chargeback/gpu-hours.ts';
import { gpuHoursQuery, heldPerPod, usageFromQueryResult } from '../../../../core/chargeback/prometheus-query.ts';
import type { KubePod } from '../../../../core/kube-objects.ts';
import { examplePolicy, NAMESPACES } from '../../../fixtures/admission.ts';
import { pod } from '../../../fixtures/pods.ts';

const policy = examplePolicy();
const at = (minute: number) => new Date(Date.UTC(2026, 10, 27, 9, minute)).toISOString();
const snap = (minute: number, pods: KubePod[]) => ({ time: at(minute), nodes: [], pods, namespaces: NAMESPACES });

const half = pod('nb').ns('research-a').gpuMilli(500).annotate('tessera.io/pool', 'shared-h100').boundTo('h');
const replica = pod('ts')
  .ns('research-b')
  .limit('nvidia.com/gpu.shared', '1')
  .annotate('tessera.io/pool', 'l4-timesliced')
  .boundTo('l');
const mig = pod('m')
  .ns('pay')
  .limit('nvidia.com/mig-3g.40gb', '1')
  .annotate('tessera.io/pool', 'a100-mig')
  .boundTo('a');

t.test('between two snapshots a pod counts what it holds in the earlier one', async (t) => {
  const done = half.build();
  done.status = { phase: 'Succeeded' };
  const snapshots = [
    snap(0, [half.build(), replica.build()]),
    snap(30, [half.build(), replica.build(), mig.build()]),
    snap(60, [done, mig.build()]),
    snap(90, []),
  ];
  const r = gpuHoursFromSnapshots(snapshots, policy, new Date(at(0)), new Date(at(90)));
  t.same(
    r.rows.map((x) => [x.tenant, x.namespace, x.pool, Math.round(x.gpuHours * 1e6) / 1e6]),
    [
      ['payments-ml', 'pay', 'a100-mig', Math.round((3 / 7) * 1 * 1e6) / 1e6],
      ['research', 'research-a', 'shared-h100', 0.5],
      ['research', 'research-b', 'l4-timesliced', Math.round(0.25 * 1 * 1e6) / 1e6],
    ],
    'half a GPU for an hour, a quarter replica for an hour, 3/7 of a GPU for an hour',
  );
  const clipped = gpuHoursFromSnapshots(snapshots, policy, new Date(at(15)), new Date(at(45)));
  t.equal(clipped.rows.find((x) => x.pool === 'shared-h100')?.gpuHours, 0.25, 'the window clips the intervals');
  t.same(gpuHoursFromSnapshots(snapshots, policy, new Date(at(95)), new Date(at(120))).rows, [], 'nothing known after');
});

t.test('the Prometheus query integrates at a fixed step; its answer is read strictly', async (t) => {
  const leaderOrAny =
    'max by (namespace, pod, tenant, pool, node, gpu) (tessera_pod_gpu_equivalents and on (instance, job) (tessera_extender_leader == 1))' +
    ' or (max by (namespace, pod, tenant, pool, node, gpu) (tessera_pod_gpu_equivalents) unless on () max(tessera_extender_leader == 1))';
  t.equal(heldPerPod(), leaderOrAny, 'the leader’s series; while none leads, the largest per pod across replicas');
  t.equal(
    gpuHoursQuery(3600, 15),
    `sum by (tenant, namespace, pool) (sum_over_time((sum by (tenant, namespace, pool) (${leaderOrAny}))[3600s:15s])) * 15 / 3600`,
  );
  // Replicas are told apart by the target (instance, job) only to find the leader's series; pods by their own labels,
  // never by naming target labels to drop (a scrape config may add any, e.g. a replica or pod name).
  t.notMatch(gpuHoursQuery(3600, 15), /without/);
  t.match(gpuHoursQuery(59.6, 0.6), /\[60s:1s\]\)\) \* 1 \/ 3600$/, 'whole seconds, the same step in both places');
  const from = new Date(at(0));
  const to = new Date(at(60));
  const ok = usageFromQueryResult(
    {
      status: 'success',
      data: {
        resultType: 'vector',
        result: [
          { metric: { tenant: 'research', namespace: 'vision', pool: 'shared-h100' }, value: [1, '1.25'] },
          { metric: { namespace: 'scratch' }, value: [1, '0.5'] },
        ],
      },
    },
    from,
    to,
  );
  t.same(typeof ok === 'string' ? ok : ok.rows, [
    { tenant: '', namespace: 'scratch', pool: '', gpuHours: 0.5 },
    { tenant: 'research', namespace: 'vision', pool: 'shared-h100', gpuHours: 1.25 },
  ]);
  t.match(usageFromQueryResult({ status: 'error', error: 'parse error' }, from, to), /answered error: parse error/);
  t.match(
    usageFromQueryResult({ status: 'success', data: { resultType: 'matrix', result: [] } }, from, to),
    /instant vector/,
  );
});
