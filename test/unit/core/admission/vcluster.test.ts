// Pods synced by a vCluster syncer (single-namespace mode): the tenant stays the host namespace's, forged identity and
// system-owned names get nowhere, a pod placed by a virtual scheduler is denied with the vCluster values to change,
// and every admitted synced pod is a fixed point of the syncer's later resize (so no endless sync-error loop).

import fc from 'fast-check';
import t from 'tap';
import { resizeConflicts, vclusterOf } from '../../../../core/admission/vcluster.ts';
import type { KubePod } from '../../../../core/kube-objects.ts';
import { admit, examplePolicy } from '../../../fixtures/admission.ts';
import { pod } from '../../../fixtures/pods.ts';

const policy = examplePolicy();
const SYNCER = { username: 'system:serviceaccount:research-a:vc-team1', groups: ['system:serviceaccounts'] };

/** A host pod as the syncer writes it: translated name, the marker and namespace labels (labels.go HostLabelsMap). */
const synced = (name: string, namespace = 'research-a') =>
  pod(`${name}-x-default-x-team1`)
    .ns(namespace)
    .label('vcluster.loft.sh/managed-by', 'team1')
    .label('vcluster.loft.sh/namespace', 'default')
    .label('team', 'vision')
    .label('cost-center', '1234')
    .annotate('vcluster.loft.sh/name', name)
    .annotate('vcluster.loft.sh/namespace', 'default');

/** kube-apiserver's defaulting before admission: an extended resource's request defaults to its limit. */
function defaulted(p: KubePod): KubePod {
  const out = structuredClone(p);
  for (const c of out.spec?.containers ?? []) {
    const r = (c.resources ??= {});
    for (const [k, v] of Object.entries(r.limits ?? {})) if (!(k in (r.requests ??= {}))) r.requests[k] = v;
  }
  return out;
}

/**
 * The syncer's resize as the API server applies it: a strategic merge of the virtual container's resource maps onto
 * the host container's (pkg/controllers/resources/pods/syncer.go buildHostPodContainersResourcesResizePatch).
 */
function resized(host: KubePod, virtual: KubePod): KubePod {
  const out = structuredClone(host);
  const byName = new Map((virtual.spec?.containers ?? []).map((c) => [c.name, c]));
  for (const c of out.spec?.containers ?? []) {
    const v = byName.get(c.name)?.resources ?? {};
    const r = (c.resources ??= {});
    if (v.limits) r.limits = { ...(r.limits ?? {}), ...v.limits };
    if (v.requests) r.requests = { ...(r.requests ?? {}), ...v.requests };
  }
  return out;
}

t.test('a synced pod is recognised by the marker label the syncer forces', async (t) => {
  t.equal(vclusterOf(synced('a').build()), 'team1');
  t.equal(vclusterOf(pod('plain').build()), null);
});

t.test('the tenant of a synced pod is the host namespace label, whatever the virtual pod says', async (t) => {
  const p = synced('frac')
    .annotate('tessera.io/gpu-fraction', '0.5')
    .label('tessera.io/tenant', 'payments-ml')
    .label('vcluster.loft.sh/ns-label-team1-x-1234567890', 'payments-ml')
    .annotate('tessera.io/policy-revision', 'forged')
    .build();
  const a = admit(defaulted(p), policy, undefined, SYNCER);
  t.equal(a.denial, null);
  t.equal(a.pod.metadata!.labels!['tessera.io/tenant'], 'research', 'the forged tenant label is overwritten');
  t.equal(a.pod.metadata!.annotations!['tessera.io/policy-revision'], policy.revision, 'the forged revision too');
  t.same(a.pod.spec!.containers![0]!.resources!.limits, { 'tessera.io/gpu-milli': '500' });
  t.equal(a.pod.metadata!.annotations!['tessera.io/pool'], 'shared-h100');
  t.same(resizeConflicts(defaulted(p), a.pod), [], 'only added keys: the syncer resize changes nothing');
});

t.test('a synced pod in a namespace without a tenant gets no GPUs, whatever labels it carries', async (t) => {
  const p = synced('x', 'plain').annotate('tessera.io/gpu-fraction', '0.5').label('tessera.io/tenant', 'research');
  const a = admit(defaulted(p.build()), policy, undefined, SYNCER);
  t.match(a.denial, /namespace plain has no tessera\.io\/tenant label/);
});

t.test('forged system-owned annotations on a synced pod are denied', async (t) => {
  for (const key of ['tessera.io/assignment', 'tessera.io/visible-devices']) {
    const p = synced('forged').annotate('tessera.io/gpu-fraction', '0.5').annotate(key, '{"node":"n1"}').build();
    const a = admit(defaulted(p), policy, undefined, SYNCER);
    t.match(a.denial, new RegExp(`annotation ${key} is written only by Tessera's extender`));
  }
});

t.test(
  "a synced GPU pod placed by vCluster's virtual scheduler is denied with the vCluster values to change",
  async (t) => {
    const p = synced('placed').annotate('tessera.io/gpu-fraction', '0.5').build();
    p.spec!.nodeName = 'gpu-node-1';
    const a = admit(defaulted(p), policy, undefined, SYNCER);
    t.match(a.denial, /spec\.nodeName=gpu-node-1 was set inside vCluster team1/);
    t.match(a.denial, /controlPlane\.distro\.k8s\.scheduler\.enabled: false/);
    t.match(a.denial, /hybridScheduling\.hostSchedulers: \[tessera-scheduler\]/);
    const plain = pod('placed').ns('research-a').annotate('tessera.io/gpu-fraction', '0.5').build();
    plain.spec!.nodeName = 'gpu-node-1';
    t.match(admit(plain, policy).denial, /bypasses the scheduler and Tessera's GPU accounting; remove nodeName/);
  },
);

t.test(
  'a synced pod whose GPU request Tessera would rewrite is denied with the request to write instead',
  async (t) => {
    const p = defaulted(synced('whole').limit('nvidia.com/gpu', '1').build());
    const a = admit(p, policy, undefined, SYNCER);
    t.match(a.denial, /synced from vCluster team1/);
    t.match(a.denial, /container main: limits nvidia\.com\/gpu 1 → removed/);
    t.match(a.denial, /limits tessera\.io\/gpu-milli: 1000/);
    // The same pod created on the host is rewritten as ever, and what the denial asks for is admitted unchanged.
    const onHost = pod('whole').ns('research-a').label('team', 'v').label('cost-center', '1234');
    t.equal(admit(defaulted(onHost.limit('nvidia.com/gpu', '1').build()), policy).denial, null);
    const asked = defaulted(synced('milli').limit('tessera.io/gpu-milli', '1000').build());
    const b = admit(asked, policy, undefined, SYNCER);
    t.equal(b.denial, null);
    t.same(b.pod.spec!.containers![0]!.resources!.limits, { 'tessera.io/gpu-milli': '1000' });
  },
);

t.test('a synced MIG request written as the profile resource is kept as it is', async (t) => {
  const p = defaulted(
    synced('mig').annotate('tessera.io/pool', 'a100-mig').limit('nvidia.com/mig-1g.10gb', '1').build(),
  );
  const a = admit(p, policy, undefined, SYNCER);
  t.equal(a.denial, null);
  t.same(resizeConflicts(p, a.pod), []);
});

t.test('property: every admitted synced pod is a fixed point of the syncer resize', async (t) => {
  const ask = fc.oneof(
    fc.record({ fraction: fc.constantFrom('0.1', '0.25', '0.5', '1') }),
    fc.record({ gpus: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ milli: fc.constantFrom(250, 500, 1000, 2000) }),
    fc.record({ mig: fc.constantFrom('1g.10gb', '3g.40gb'), viaPool: fc.boolean() }),
    fc.record({ shared: fc.constant(1) }),
  );
  let admittedCount = 0;
  let refused = 0;
  fc.assert(
    fc.property(
      ask,
      fc.constantFrom(undefined, 'shared-h100', 'a100-mig', 'l4-timesliced'),
      fc.boolean(),
      (a, pool, cpu) => {
        const b = synced('p');
        if (cpu) b.cpu('2').memory('4Gi');
        if (pool) b.annotate('tessera.io/pool', pool);
        if ('fraction' in a) b.annotate('tessera.io/gpu-fraction', a.fraction);
        if ('gpus' in a) b.limit('nvidia.com/gpu', String(a.gpus));
        if ('milli' in a) b.limit('tessera.io/gpu-milli', String(a.milli));
        if ('mig' in a) {
          if (a.viaPool) b.annotate('tessera.io/mig-profile', a.mig);
          else b.limit(`nvidia.com/mig-${a.mig}`, '1');
        }
        if ('shared' in a) b.limit('nvidia.com/gpu.shared', '1');
        const virtual = defaulted(b.build());
        const admitted = admit(virtual, policy, undefined, SYNCER);
        if (admitted.denial !== null) {
          if (/synced from vCluster/.test(admitted.denial)) refused++;
          return true;
        }
        admittedCount++;
        const host = admitted.pod;
        return JSON.stringify(resized(host, virtual).spec) === JSON.stringify(host.spec);
      },
    ),
    { numRuns: 300 },
  );
  t.ok(admittedCount > 50, `${admittedCount} admitted synced pods checked against the resize`);
  t.ok(refused > 0, `${refused} rewrites refused for the resize`);
});
