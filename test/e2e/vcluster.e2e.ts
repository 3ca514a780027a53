// vCluster tenants on the real control plane (kube-apiserver v1.37.2 with pods/resize, kube-scheduler with Tessera's
// extender, KWOK nodes). vCluster itself is not run: a STAND-IN for its pod syncer (test/fixtures/vcluster-syncer.ts)
// replays the host writes the real syncer makes, under the syncer's service account and the Role vCluster's chart
// grants: creates, label and annotation sync both ways, spec sync (images, gates, tolerations), status updates and
// in-place resizes. The promises: the tenant is the host namespace's label whatever the virtual cluster writes; a pod
// placed by a virtual scheduler is denied with the vCluster values to change; Tessera's mutations survive the syncer's
// later writes, whose every update and resize either succeeds or meets the same explained denial each time.

import { readFileSync } from 'node:fs';
import t from 'tap';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import {
  grantSyncerRole,
  syncerIdentity,
  type SyncOutcome,
  VClusterSyncerStandIn,
} from '../fixtures/vcluster-syncer.ts';
import { apiErrorMessage, until } from '../fixtures/waiting.ts';
import { createFakeNode, startStack, type Stack } from './stack.ts';

const POLICY = readFileSync(new URL('../../../shared/examples/policy.yaml', import.meta.url), 'utf8');
const HOST_NS = 'vcluster-team1';
const UNTENANTED_NS = 'vcluster-lab';

const fractionNode = (name: string) => ({
  metadata: {
    name,
    labels: {
      'tessera.io/pool': 'shared-h100',
      'tessera.io/sharing': 'fraction',
      'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3',
      'nvidia.com/gpu.count': '8',
      'nvidia.com/gpu.memory': '81559',
      'nvidia.com/gpu.sharing-strategy': 'none',
    },
  },
  spec: { taints: [{ key: 'tessera.io/pool', value: 'shared-h100', effect: 'NoSchedule' }] },
});

/** A pod as a tenant writes it inside the virtual cluster. */
function virtualPod(
  name: string,
  options: {
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    limits?: Record<string, string>;
    nodeName?: string;
    gates?: string[];
  } = {},
): V1Pod {
  return {
    metadata: {
      name,
      namespace: 'default',
      labels: { team: 'vision', 'cost-center': '1234', ...options.labels },
      annotations: { ...options.annotations },
    },
    spec: {
      ...(options.nodeName ? { nodeName: options.nodeName } : {}),
      ...(options.gates ? { schedulingGates: options.gates.map((g) => ({ name: g })) } : {}),
      containers: [
        {
          name: 'main',
          image: 'registry.example/train:1',
          resources: { requests: { cpu: '1', memory: '1Gi' }, ...(options.limits ? { limits: options.limits } : {}) },
        },
      ],
    },
  };
}

/** Reconciles until a sync ends without error (the real syncer requeues with backoff). */
async function settle(syncer: VClusterSyncerStandIn, name: string): Promise<SyncOutcome> {
  return until(`the syncer to settle ${name}`, async () => {
    const r = await syncer.sync(name);
    if (r.error !== null) throw new Error(r.error);
    return r;
  });
}

t.test('vCluster tenants through Tessera, with a stand-in for the vCluster syncer', async (t) => {
  const logFile = process.env.TESSERA_E2E_LOG;
  const syncerUser = syncerIdentity(HOST_NS, 'team1');
  const labUser = syncerIdentity(UNTENANTED_NS, 'lab');
  const stack: Stack = await startStack({
    policy: POLICY,
    progress: (l) => t.comment(l),
    identities: [syncerUser, labUser],
    ...(logFile ? { log: pino({ level: 'debug' }, pino.destination(logFile)) } : {}),
  });
  t.teardown(() => stack.stop());
  const adminKc = stack.client('admin');
  const admin = adminKc.makeApiClient(CoreV1Api);
  const alice = stack.client('alice@acme.example').makeApiClient(CoreV1Api);
  await createFakeNode(admin, fractionNode('h100-0'), { cpu: '96', memory: '1Ti', pods: '110' });
  // The platform admin creates the vCluster's host namespace with its tenant; vCluster's chart creates the rest.
  await alice.createNamespace({ body: { metadata: { name: HOST_NS, labels: { 'tessera.io/tenant': 'research' } } } });
  await alice.createNamespace({ body: { metadata: { name: UNTENANTED_NS } } });
  for (const [ns, vc] of [
    [HOST_NS, 'team1'],
    [UNTENANTED_NS, 'lab'],
  ] as const) {
    await grantSyncerRole(adminKc, ns, vc);
    // chart/templates/workload-serviceaccount.yaml: the service account synced pods run as.
    await admin.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: `vc-workload-${vc}` } } });
  }
  const syncerCore = stack.client(syncerUser.user).makeApiClient(CoreV1Api);
  const syncer = new VClusterSyncerStandIn('team1', HOST_NS, syncerCore);
  const lab = new VClusterSyncerStandIn('lab', UNTENANTED_NS, stack.client(labUser.user).makeApiClient(CoreV1Api));
  const host = (name: string) =>
    admin.readNamespacedPod({ namespace: HOST_NS, name: syncer.hostName(name, 'default') });
  /** KWOK has moved the bound host pod to Running, so no status write of its own races the stillness checks. */
  const running = (name: string) =>
    until(`${name} Running`, async () => {
      const p = await host(name);
      return p.status?.phase === 'Running' && p.status.conditions?.some((c) => c.type === 'Ready') ? p : null;
    });
  await until('fraction capacity on h100-0', async () => {
    const n = await admin.readNode({ name: 'h100-0' });
    return ['8k', '8000'].includes(String(n.status?.allocatable?.['tessera.io/gpu-milli']));
  });

  await t.test(
    'the tenant is the host namespace label; what the virtual cluster writes cannot change it',
    async (t) => {
      // The tenant labels its virtual namespace and pod as another tenant and forges Tessera's revision stamp.
      syncer.virtualNamespaceLabels.set('default', { 'tessera.io/tenant': 'payments-ml' });
      const created = await syncer.create(
        virtualPod('train', {
          labels: { 'tessera.io/tenant': 'payments-ml' },
          annotations: { 'tessera.io/gpu-fraction': '0.5', 'tessera.io/policy-revision': 'forged' },
        }),
      );
      t.equal(created.error, null, 'the syncer creates the host pod');
      const p = await host('train');
      t.equal(p.metadata!.name, 'train-x-default-x-team1', "vCluster's translated name");
      t.equal(p.metadata!.labels!['vcluster.loft.sh/managed-by'], 'team1');
      t.equal(p.metadata!.labels!['tessera.io/tenant'], 'research', 'the forged pod label is overwritten');
      t.notOk(
        Object.entries(p.metadata!.labels!).some(([k, v]) => k === 'tessera.io/tenant' && v === 'payments-ml'),
        'the virtual namespace label reaches the host only under a vcluster.loft.sh/ns-label- key',
      );
      t.ok(Object.keys(p.metadata!.labels!).some((k) => k.startsWith('vcluster.loft.sh/ns-label-team1-x-')));
      t.not(p.metadata!.annotations!['tessera.io/policy-revision'], 'forged', 'the forged revision is replaced');
      t.equal(p.metadata!.annotations!['tessera.io/pool'], 'shared-h100');
      t.equal(p.spec!.schedulerName, 'tessera-scheduler');
      t.same(p.spec!.containers[0]!.resources!.limits, { 'tessera.io/gpu-milli': '500' });
      const bound = await until('train bound by the extender', async () => {
        const x = await host('train');
        return x.spec?.nodeName && x.metadata?.annotations?.['tessera.io/assignment'] ? x : null;
      });
      t.equal(bound.spec!.nodeName, 'h100-0');
    },
  );

  await t.test('the first syncs copy Tessera stamps into the virtual pod, then the pair stays still', async (t) => {
    await running('train');
    await settle(syncer, 'train');
    const v = syncer.virtualPod('train');
    t.equal(v.metadata!.labels!['tessera.io/tenant'], 'research', 'the tenant sees its real tenant');
    t.equal(v.metadata!.annotations!['tessera.io/pool'], 'shared-h100');
    t.match(v.metadata!.annotations!['tessera.io/assignment'], /"node":"h100-0"/, 'and the assignment');
    t.equal(v.spec!.nodeName, 'h100-0');
    const before = (await host('train')).metadata!.resourceVersion;
    for (let i = 0; i < 3; i++) {
      const r = await syncer.sync('train');
      t.equal(r.error, null, `sync ${i + 1} ends without error`);
      t.same(
        r.writes.filter((w) => w.changed),
        [],
        `sync ${i + 1} changes nothing on the host (its resize of the virtual resources is a no-op)`,
      );
    }
    t.equal((await host('train')).metadata!.resourceVersion, before, 'no write loop: the host pod is untouched');
  });

  await t.test(
    'tenant edits inside the virtual cluster: ordinary ones reach the host, Tessera names do not',
    async (t) => {
      syncer.editVirtual('train', 'default', (p) => {
        p.metadata!.labels!.app = 'trainer';
        p.metadata!.annotations!.note = 'epoch 3';
      });
      await settle(syncer, 'train');
      const p = await host('train');
      t.equal(p.metadata!.labels!.app, 'trainer');
      t.equal(p.metadata!.annotations!.note, 'epoch 3');
      const assignment = syncer.virtualPod('train').metadata!.annotations!['tessera.io/assignment']!;
      const refused: [string, (p: V1Pod) => void, (p: V1Pod) => void, RegExp][] = [
        [
          'tessera.io/assignment',
          (p) => {
            p.metadata!.annotations!['tessera.io/assignment'] = '{"node":"h100-0","gpus":[{"index":7,"milli":1000}]}';
          },
          (p) => {
            p.metadata!.annotations!['tessera.io/assignment'] = assignment;
          },
          /annotation tessera\.io\/assignment is written only by Tessera's extender/,
        ],
        [
          'tessera.io/tenant',
          (p) => {
            p.metadata!.labels!['tessera.io/tenant'] = 'payments-ml';
          },
          (p) => {
            p.metadata!.labels!['tessera.io/tenant'] = 'research';
          },
          /label tessera\.io\/tenant=payments-ml does not match the namespace's tenant research/,
        ],
        [
          'tessera.io/gpu-fraction',
          (p) => {
            p.metadata!.annotations!['tessera.io/gpu-fraction'] = '1';
          },
          (p) => {
            p.metadata!.annotations!['tessera.io/gpu-fraction'] = '0.5';
          },
          /tessera\.io\/gpu-fraction/,
        ],
      ];
      for (const [what, edit, revert, reason] of refused) {
        syncer.editVirtual('train', 'default', edit);
        const rv = (await host('train')).metadata!.resourceVersion;
        const first = await syncer.sync('train');
        const second = await syncer.sync('train');
        t.match(first.error, reason, `${what}: the host update is denied with its reason`);
        t.match(first.error, /patch host object/, `${what}: as the syncer reports it`);
        t.equal(second.error, first.error, `${what}: the next reconcile meets the same denial (stable, no fight)`);
        t.equal((await host('train')).metadata!.resourceVersion, rv, `${what}: the host pod is unchanged`);
        syncer.editVirtual('train', 'default', revert);
        await settle(syncer, 'train');
      }
      const p2 = await host('train');
      t.equal(p2.metadata!.labels!['tessera.io/tenant'], 'research');
      t.same(p2.spec!.containers[0]!.resources!.limits, { 'tessera.io/gpu-milli': '500' });
    },
  );

  await t.test('status conditions written inside the virtual cluster reach the host status', async (t) => {
    syncer.editVirtual('train', 'default', (p) => {
      (p.status ??= {}).conditions = [
        ...(p.status.conditions ?? []),
        { type: 'example.com/warm', status: 'True', lastTransitionTime: new Date() },
      ];
    });
    const r = await settle(syncer, 'train');
    t.ok(
      r.writes.some((w) => w.kind === 'status'),
      'a status update',
    );
    const p = await host('train');
    t.ok(p.status!.conditions!.some((c) => c.type === 'example.com/warm' && c.status === 'True'));
    t.equal((await syncer.sync('train')).error, null);
  });

  await t.test('resizes: a cpu resize applies and keeps the GPU keys Tessera added', async (t) => {
    syncer.editVirtual('train', 'default', (p) => {
      p.spec!.containers[0]!.resources!.requests!.cpu = '2';
    });
    const r = await settle(syncer, 'train');
    t.ok(
      r.writes.some((w) => w.kind === 'resize' && w.changed),
      'the syncer resized the host pod',
    );
    const p = await host('train');
    t.equal(String(p.spec!.containers[0]!.resources!.requests!.cpu), '2');
    t.equal(String(p.spec!.containers[0]!.resources!.requests!['tessera.io/gpu-milli']), '500');
    t.same(p.spec!.containers[0]!.resources!.limits, { 'tessera.io/gpu-milli': '500' });
    const rv = p.metadata!.resourceVersion;
    for (let i = 0; i < 2; i++)
      t.same(
        (await syncer.sync('train')).writes.filter((w) => w.changed),
        [],
      );
    t.equal((await host('train')).metadata!.resourceVersion, rv, 'and then the pair stays still');
  });

  await t.test(
    'why Tessera may only add resource keys to a synced pod: the API server refuses the resize back',
    async (t) => {
      // What the syncer would send for a pod whose nvidia.com/gpu Tessera had replaced: the key put back by resize.
      const err = await syncerCore
        .patchNamespacedPodResize(
          {
            namespace: HOST_NS,
            name: syncer.hostName('train', 'default'),
            body: { spec: { containers: [{ name: 'main', resources: { limits: { 'nvidia.com/gpu': '1' } } }] } },
          },
          setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
        )
        .then(() => null)
        .catch((e: unknown) => apiErrorMessage(e));
      t.ok(err, 'refused');
      t.comment(`kube-apiserver: ${err}`);
      t.match(err, /only cpu and memory resources are mutable/);
    },
  );

  await t.test('a synced pod whose GPU request Tessera would rewrite is denied, the same way each time', async (t) => {
    const first = await syncer.create(virtualPod('whole', { limits: { 'nvidia.com/gpu': '1' } }));
    t.match(first.error, /^Error syncing to host cluster: /);
    t.match(first.error, /synced from vCluster team1/);
    t.match(first.error, /limits tessera\.io\/gpu-milli: 1000/, 'it says what to write instead');
    const again = await syncer.create(virtualPod('whole', { limits: { 'nvidia.com/gpu': '1' } }));
    t.equal(again.error, first.error);
    // What the denial asks for is admitted, bound, and then left alone by the syncer.
    t.equal((await syncer.create(virtualPod('milli', { limits: { 'tessera.io/gpu-milli': '1000' } }))).error, null);
    await running('milli');
    await settle(syncer, 'milli');
    const rv = (await host('milli')).metadata!.resourceVersion;
    const r = await syncer.sync('milli');
    t.equal(r.error, null);
    t.same(r.writes, [], 'no resize at all: host and virtual resources are the same');
    t.equal((await host('milli')).metadata!.resourceVersion, rv);
  });

  await t.test("a GPU pod placed by vCluster's virtual scheduler is denied with the values to change", async (t) => {
    const r = await syncer.create(
      virtualPod('placed', { annotations: { 'tessera.io/gpu-fraction': '0.25' }, nodeName: 'h100-0' }),
    );
    t.match(r.error, /spec\.nodeName=h100-0 was set inside vCluster team1/);
    t.match(r.error, /controlPlane\.distro\.k8s\.scheduler\.enabled: false/);
    t.match(r.error, /hybridScheduling\.hostSchedulers: \[tessera-scheduler\]/);
  });

  await t.test("scheduling gates are the virtual pod's to lift; Tessera does not rely on them", async (t) => {
    t.equal(
      (
        await syncer.create(
          virtualPod('gated', { annotations: { 'tessera.io/gpu-fraction': '0.25' }, gates: ['example.com/data'] }),
        )
      ).error,
      null,
    );
    await settle(syncer, 'gated');
    await new Promise((r) => setTimeout(r, 1000));
    t.notOk((await host('gated')).spec!.nodeName, 'held by its gate');
    syncer.editVirtual('gated', 'default', (p) => {
      delete p.spec!.schedulingGates;
    });
    await settle(syncer, 'gated');
    const p = await until('gated bound once its gate is gone', async () => {
      const x = await host('gated');
      return x.spec?.nodeName ? x : null;
    });
    t.equal(p.spec!.nodeName, 'h100-0');
    t.ok(
      p.spec!.tolerations!.some((x) => x.key === 'tessera.io/pool' && x.value === 'shared-h100'),
      "Tessera's pool toleration survived the syncer's toleration sync",
    );
  });

  await t.test('over quota, the denial reads well in the syncer event', async (t) => {
    t.equal((await syncer.create(virtualPod('big', { limits: { 'tessera.io/gpu-milli': '8000' } }))).error, null);
    const r = await syncer.create(virtualPod('bigger', { limits: { 'tessera.io/gpu-milli': '4000' } }));
    t.match(r.error, /^Error syncing to host cluster: /);
    t.match(r.error, /quota/);
    t.comment(r.error ?? '');
  });

  await t.test('a vCluster whose host namespace has no tenant gets no GPUs, whatever its pods carry', async (t) => {
    lab.virtualNamespaceLabels.set('default', { 'tessera.io/tenant': 'research' });
    const r = await lab.create(
      virtualPod('sneak', {
        labels: { 'tessera.io/tenant': 'research' },
        annotations: { 'tessera.io/gpu-fraction': '0.25', 'tessera.io/pool': 'shared-h100' },
      }),
    );
    t.match(r.error, /namespace vcluster-lab has no tessera\.io\/tenant label/);
    // A CPU pod of that vCluster is none of Tessera's business.
    t.equal((await lab.create(virtualPod('web'))).error, null);
  });
});
