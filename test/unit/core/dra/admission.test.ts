import t from 'tap';
import { staticClusterView } from '../../../../core/admission/cluster-view.ts';
import { runAdmission } from '../../../../core/admission/pipeline.ts';
import type { AdmissionRequest, UserInfo } from '../../../../core/admission/request.ts';
import { staticDraLookup } from '../../../../core/dra/lookup.ts';
import type { KubePod } from '../../../../core/kube-objects.ts';
import { ALICE, BOB, CONFIG, examplePolicy, NAMESPACES } from '../../../fixtures/admission.ts';
import {
  claim,
  claimTemplate,
  deviceClass,
  DRA_POLICY_TEXT,
  exactly,
  migProfileClass,
  NVIDIA_CLASSES,
  profileSelector,
} from '../../../fixtures/dra.ts';
import { pod } from '../../../fixtures/pods.ts';

const policy = examplePolicy(DRA_POLICY_TEXT);

const OBJECTS = [
  ...NVIDIA_CLASSES,
  migProfileClass('1g.10gb'),
  deviceClass('everything', null),
  deviceClass('nic.example.com', "device.driver == 'nic.example.com'"),
  deviceClass('accel.example.com', "device.driver == 'gpu.nvidia.com'", 'example.com/accel'),
  ...['research-a', 'pay', 'plain'].flatMap((ns) => [
    claimTemplate('one-gpu', ns, [exactly('gpu', 'gpu.nvidia.com')]),
    claimTemplate('four-gpus', ns, [exactly('gpu', 'gpu.nvidia.com', { count: 4 })]),
    claimTemplate('nine-gpus', ns, [exactly('gpu', 'gpu.nvidia.com', { count: 9 })]),
    claimTemplate('mig-3g', ns, [exactly('mig', 'mig.nvidia.com', { selectors: profileSelector('3g.40gb') })]),
    claimTemplate('mig-any', ns, [exactly('mig', 'mig.nvidia.com')]),
    claimTemplate('admin', ns, [exactly('gpu', 'gpu.nvidia.com', { adminAccess: true })]),
    claimTemplate('all', ns, [exactly('gpu', 'gpu.nvidia.com', { allocationMode: 'All' })]),
    claimTemplate('first', ns, [
      {
        name: 'gpu',
        firstAvailable: [
          { name: 'small', deviceClassName: 'mig.nvidia.com', selectors: profileSelector('1g.10gb') },
          { name: 'big', deviceClassName: 'gpu.nvidia.com', count: 2 },
        ],
      },
    ]),
    claimTemplate('nic', ns, [exactly('nic', 'nic.example.com')]),
    claimTemplate('wild', ns, [exactly('any', 'everything')]),
    claimTemplate('vfio', ns, [exactly('vm', 'vfio.gpu.nvidia.com')]),
    claimTemplate('per-profile', ns, [exactly('mig', 'mig-1g.10gb.nvidia.com')]),
  ]),
  claim('shared-gpus', 'research-a', [exactly('gpu', 'gpu.nvidia.com', { count: 2 })]),
];

function viewWith(pods: KubePod[] = []) {
  return staticClusterView(NAMESPACES, pods, staticDraLookup(OBJECTS));
}

const tenantPod = (name: string, namespace = 'research-a') =>
  pod(name).ns(namespace).label('team', 'vision').label('cost-center', '1234');

function withClaims(b: ReturnType<typeof pod>, claims: Record<string, { template?: string; claim?: string }>): KubePod {
  const p = b.build();
  p.spec!.resourceClaims = Object.entries(claims).map(([name, ref]) => ({
    name,
    ...(ref.template ? { resourceClaimTemplateName: ref.template } : {}),
    ...(ref.claim ? { resourceClaimName: ref.claim } : {}),
  }));
  p.spec!.containers![0]!.resources!.claims = Object.keys(claims).map((name) => ({ name }));
  return p;
}

let n = 0;
function review(kind: string, object: unknown, options: { user?: UserInfo; old?: unknown; namespace?: string } = {}) {
  const meta = (object as { metadata?: { name?: string; namespace?: string } }).metadata ?? {};
  const group = kind === 'Pod' || kind === 'Namespace' ? '' : kind === 'Deployment' ? 'apps' : 'resource.k8s.io';
  const req: AdmissionRequest = {
    uid: `dra-${++n}`,
    kind: { group, version: 'v1', kind },
    namespace: options.namespace ?? meta.namespace ?? '',
    name: meta.name ?? '',
    operation: options.old ? 'UPDATE' : 'CREATE',
    userInfo: options.user ?? BOB,
    object,
    ...(options.old ? { oldObject: options.old } : {}),
  };
  return req;
}

function admitPod(p: KubePod, pods: KubePod[] = []) {
  const r = runAdmission(review('Pod', p), policy, viewWith(pods), CONFIG);
  return {
    allowed: r.response.allowed,
    message: r.response.status?.message ?? '',
    warnings: r.response.warnings ?? [],
    pod: r.object as KubePod,
  };
}

function admitObject(kind: string, object: unknown, options: { user?: UserInfo; old?: unknown } = {}) {
  const r = runAdmission(review(kind, object, options), policy, viewWith(), CONFIG);
  return {
    allowed: r.response.allowed,
    message: r.response.status?.message ?? '',
    warnings: r.response.warnings ?? [],
  };
}

const running = (name: string, namespace: string, claims: Record<string, { template?: string; claim?: string }>) => {
  const p = withClaims(pod(name).ns(namespace).uid(`uid-${name}`).annotate('tessera.io/pool', 'dra-h100'), claims);
  p.spec!.nodeName = 'dra-0';
  p.status = { phase: 'Running' };
  return p;
};

t.test('a tenant pod with a GPU claim template is pinned to the dra pool like any GPU pod', async (t) => {
  const p = withClaims(tenantPod('train'), { gpu: { template: 'one-gpu' } });
  p.spec!.containers!.push({ name: 'sidecar', image: 'registry.example/log:1' });
  const a = admitPod(p);
  t.equal(a.allowed, true, a.message);
  t.equal(a.pod.spec!.schedulerName, 'tessera-scheduler');
  t.equal(a.pod.metadata!.annotations!['tessera.io/pool'], 'dra-h100');
  t.match(a.pod.spec!.affinity, {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: [{ matchExpressions: [{ key: 'tessera.io/pool', operator: 'In', values: ['dra-h100'] }] }],
      },
    },
  });
  t.match(a.pod.spec!.tolerations, [{ key: 'tessera.io/pool', value: 'dra-h100', effect: 'NoSchedule' }]);
  t.same(
    a.pod.spec!.containers![0]!.resources!.limits,
    { 'tessera.io/dra-claims': '1' },
    'the marker that makes kube-scheduler call the extender',
  );
  t.notOk(
    (a.pod.spec!.containers![0]!.env ?? []).some((e) => e.name === 'NVIDIA_VISIBLE_DEVICES'),
    'the claim container keeps the devices DRA gives it',
  );
  t.match(a.pod.spec!.containers![1]!.env, [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'void' }]);
  const again = admitPod(a.pod);
  t.equal(again.allowed, true, 'mutating its own output changes nothing and still passes');
  t.same(again.pod, a.pod);
});

t.test('a tenant without a pool listing the class gets no GPU claims; denials say what to do', async (t) => {
  const a = admitPod(withClaims(tenantPod('p', 'pay'), { gpu: { template: 'one-gpu' } }));
  t.equal(a.allowed, false);
  t.match(
    a.message,
    /ResourceClaimTemplate one-gpu request gpu names DeviceClass gpu.nvidia.com, a GPU class that no pool of tenant payments-ml lists; tenant payments-ml has no dra pool, so ask for GPUs with tessera.io\/gpu-fraction/,
  );
  const plain = admitPod(withClaims(pod('x').ns('plain'), { gpu: { template: 'one-gpu' } }));
  t.equal(plain.allowed, false);
  t.match(
    plain.message,
    /namespace plain has no tessera.io\/tenant label, and a namespace without a tenant gets no GPUs/,
  );
  const nic = admitPod(withClaims(pod('n').ns('plain'), { nic: { template: 'nic' } }));
  t.equal(nic.allowed, true, 'claims of other devices are not Tessera business');
  t.equal(nic.pod.spec!.schedulerName, 'default-scheduler');
  const wild = admitPod(withClaims(tenantPod('w'), { any: { template: 'wild' } }));
  t.match(
    wild.message,
    /names DeviceClass everything, whose selectors pin no driver, so it selects every device of a node, GPUs included that no pool of tenant research lists; name one of gpu.nvidia.com, mig.nvidia.com/,
  );
  const vfio = admitPod(withClaims(tenantPod('v'), { vm: { template: 'vfio' } }));
  t.match(vfio.message, /DeviceClass vfio.gpu.nvidia.com, a GPU class that no pool of tenant research lists/);
  const perProfile = admitPod(withClaims(tenantPod('pp'), { mig: { template: 'per-profile' } }));
  t.equal(
    perProfile.allowed,
    true,
    'the class that backs nvidia.com/mig-1g.10gb serves the dra pool (kube-scheduler claims it for mig-profile pods)',
  );
  t.match(
    admitPod(withClaims(tenantPod('pq', 'pay'), { mig: { template: 'per-profile' } })).message,
    /DeviceClass mig-1g.10gb.nvidia.com, a GPU class that no pool of tenant payments-ml lists/,
  );
});

t.test('adminAccess and allocationMode All are denied', async (t) => {
  t.match(
    admitPod(withClaims(tenantPod('a'), { gpu: { template: 'admin' } })).message,
    /asks for adminAccess to gpu.nvidia.com devices, which reaches GPUs that other tenants' pods use.*Remove adminAccess/,
  );
  t.match(
    admitPod(withClaims(tenantPod('b'), { gpu: { template: 'all' } })).message,
    /uses allocationMode All on gpu.nvidia.com, which takes every matching device of a node; ask for a number of devices/,
  );
});

t.test('claimed devices count toward maxGpusPerPod and quota', async (t) => {
  t.match(
    admitPod(withClaims(tenantPod('big'), { gpu: { template: 'nine-gpus' } })).message,
    /the pod asks for 9 GPU-equivalents; tenant research allows at most 8 per pod/,
  );
  const held = [
    running('r0', 'research-a', { g: { template: 'four-gpus' } }),
    running('r1', 'research-b', { g: { template: 'four-gpus' } }),
  ];
  held[1]!.spec!.resourceClaims![0]!.resourceClaimTemplateName = 'four-gpus';
  // research-b has no templates in the context: the held pod is counted through its generated claim instead.
  held[1]!.metadata!.namespace = 'research-a';
  const four = admitPod(withClaims(tenantPod('four'), { gpu: { template: 'four-gpus' } }), held);
  t.equal(four.allowed, true, '8 held + 4 = 12, the quota');
  const five = admitPod(
    withClaims(tenantPod('five'), { gpu: { template: 'four-gpus' }, mig: { template: 'mig-any' } }),
    held,
  );
  t.match(
    five.message,
    /tenant research has a quota of 12 GPU-equivalents; 8 are held by 2 pod\(s\) and this pod needs 5/,
    'a MIG device without a pinned profile counts as a whole GPU',
  );
  const mig = admitPod(
    withClaims(tenantPod('m'), { gpu: { template: 'four-gpus' }, mig: { template: 'mig-3g' } }),
    held,
  );
  t.match(mig.message, /this pod needs 4.429/, 'a 3g.40gb MIG device counts 3/7');
  const first = admitPod(withClaims(tenantPod('f'), { gpu: { template: 'first' } }), held);
  t.equal(first.allowed, true, 'firstAvailable weighs its heaviest alternative (2 GPUs): 10 of 12');
});

t.test('a ResourceClaim that several pods name counts once', async (t) => {
  const held = [
    running('s0', 'research-a', { g: { claim: 'shared-gpus' } }),
    running('s1', 'research-a', { g: { claim: 'shared-gpus' } }),
    running('s2', 'research-a', { g: { template: 'four-gpus' } }),
    running('s3', 'research-a', { g: { template: 'four-gpus' } }),
  ];
  const third = admitPod(withClaims(tenantPod('s4'), { g: { claim: 'shared-gpus' } }), held);
  t.equal(third.allowed, true, `2 (shared) + 8 held; the shared claim is already counted: ${third.message}`);
  const more = admitPod(withClaims(tenantPod('s5'), { g: { template: 'four-gpus' } }), held);
  t.match(more.message, /10 are held by 4 pod\(s\) and this pod needs 4/);
});

t.test('extended resources backed by DRA count like claims of their class', async (t) => {
  const implicit = admitPod(tenantPod('i').limit('deviceclass.resource.kubernetes.io/gpu.nvidia.com', '2').build());
  t.equal(implicit.allowed, true, implicit.message);
  t.equal(implicit.pod.metadata!.annotations!['tessera.io/pool'], 'dra-h100');
  t.notOk(
    implicit.pod.spec!.containers![0]!.resources!.limits!['tessera.io/dra-claims'],
    'no marker beside a DRA-backed extended resource (kube-scheduler would refuse every node)',
  );
  t.match(
    admitPod(tenantPod('i9').limit('deviceclass.resource.kubernetes.io/gpu.nvidia.com', '9').build()).message,
    /asks for 9 GPU-equivalents/,
  );
  t.match(
    admitPod(tenantPod('ip', 'pay').limit('deviceclass.resource.kubernetes.io/mig.nvidia.com', '1').build()).message,
    /extended resource deviceclass.resource.kubernetes.io\/mig.nvidia.com \(DeviceClass mig.nvidia.com\) names DeviceClass mig.nvidia.com, a GPU class that no pool of tenant payments-ml lists/,
  );
  t.match(
    admitPod(tenantPod('e').limit('example.com/accel', '1').build()).message,
    /extended resource example.com\/accel \(DeviceClass accel.example.com\) names DeviceClass accel.example.com, a GPU class that no pool of tenant research lists/,
  );
  t.match(
    admitPod(pod('e').ns('plain').limit('example.com/accel', '1').build()).message,
    /namespace plain has no tessera.io\/tenant label/,
  );
  const nvidia = admitPod(tenantPod('g').annotate('tessera.io/pool', 'dra-h100').limit('nvidia.com/gpu', '1').build());
  t.equal(nvidia.allowed, true, 'nvidia.com/gpu on the dra pool is what gpu.nvidia.com maps to DRA');
  t.same(nvidia.pod.spec!.containers![0]!.resources!.limits, { 'nvidia.com/gpu': '1' });
});

t.test('annotations on the dra pool become the mapped extended resources; fractions are denied', async (t) => {
  const count = admitPod(
    tenantPod('c').annotate('tessera.io/pool', 'dra-h100').annotate('tessera.io/gpu-count', '2').build(),
  );
  t.equal(count.allowed, true, count.message);
  t.same(count.pod.spec!.containers![0]!.resources!.limits, { 'nvidia.com/gpu': '2' });
  const mig = admitPod(
    tenantPod('m').annotate('tessera.io/pool', 'dra-h100').annotate('tessera.io/mig-profile', '1g.10gb').build(),
  );
  t.same(mig.pod.spec!.containers![0]!.resources!.limits, { 'nvidia.com/mig-1g.10gb': '1' });
  const fraction = admitPod(
    tenantPod('f').annotate('tessera.io/pool', 'dra-h100').annotate('tessera.io/gpu-fraction', '0.25').build(),
  );
  t.equal(fraction.allowed, false);
  t.match(fraction.message, /none of them lets several claims share one device, so it cannot give 0.25 of a GPU/);
});

t.test('unresolved claims are denied in pods and warned about in workload templates', async (t) => {
  const p = admitPod(withClaims(tenantPod('u'), { gpu: { template: 'missing' } }));
  t.match(
    p.message,
    /names ResourceClaimTemplate missing, which does not exist in namespace research-a.*create the template first/,
  );
  const deployment = (namespace: string, claims: Record<string, { template?: string }>) => {
    const tpl = withClaims(tenantPod('tpl', namespace), claims);
    return {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'd', namespace },
      spec: { template: { metadata: tpl.metadata, spec: tpl.spec } },
    };
  };
  const later = admitObject('Deployment', deployment('research-a', { gpu: { template: 'missing' } }));
  t.equal(later.allowed, true);
  t.match(later.warnings, [/Deployment spec.template: .*ResourceClaimTemplate missing, which does not exist/]);
  const foreign = admitObject('Deployment', deployment('pay', { gpu: { template: 'one-gpu' } }));
  t.equal(foreign.allowed, false);
  t.match(
    foreign.message,
    /Deployment spec.template: ResourceClaimTemplate one-gpu request gpu names DeviceClass gpu.nvidia.com, a GPU class that no pool of tenant payments-ml lists/,
  );
});

t.test('ResourceClaims and ResourceClaimTemplates are checked at their own admission', async (t) => {
  const four = claim('four', 'pay', [exactly('gpu', 'gpu.nvidia.com', { count: 4 })]);
  const denied = admitObject('ResourceClaim', four);
  t.equal(denied.allowed, false);
  t.match(
    denied.message,
    /ResourceClaim four: request gpu names DeviceClass gpu.nvidia.com, a GPU class that no pool of tenant payments-ml lists/,
  );
  t.equal(admitObject('ResourceClaim', { ...four, metadata: { name: 'four', namespace: 'research-a' } }).allowed, true);
  t.match(
    admitObject(
      'ResourceClaimTemplate',
      claimTemplate('big', 'research-a', [exactly('gpu', 'gpu.nvidia.com', { count: 9 })]),
    ).message,
    /ResourceClaimTemplate big: the claim asks for 9 GPU-equivalents, and a pod using it would exceed tenant research's 8 per pod/,
  );
  t.match(
    admitObject('ResourceClaim', claim('adm', 'research-a', [exactly('gpu', 'mig.nvidia.com', { adminAccess: true })]))
      .message,
    /ResourceClaim adm: request gpu asks for adminAccess to mig.nvidia.com devices/,
  );
  t.match(
    admitObject('ResourceClaim', claim('x', 'plain', [exactly('gpu', 'gpu.nvidia.com')])).message,
    /namespace plain has no tessera.io\/tenant label/,
  );
  t.equal(admitObject('ResourceClaim', claim('nic', 'plain', [exactly('nic', 'nic.example.com')])).allowed, true);
  const first = claim('f', 'pay', [
    {
      name: 'gpu',
      firstAvailable: [
        { name: 'nic', deviceClassName: 'nic.example.com' },
        { name: 'gpu', deviceClassName: 'gpu.nvidia.com' },
      ],
    },
  ]);
  t.match(
    admitObject('ResourceClaim', first).message,
    /request gpu, alternative gpu names DeviceClass gpu.nvidia.com/,
    'every firstAvailable alternative is checked',
  );
  const old = claim('four', 'research-a', [exactly('gpu', 'gpu.nvidia.com', { count: 4 })]);
  t.equal(admitObject('ResourceClaim', old, { old }).allowed, true, 'an UPDATE that adds nothing passes');
});

t.test('the namespace label resource.kubernetes.io/admin-access is guarded like tessera.io/tenant', async (t) => {
  const labelled = {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: 'research-a',
      labels: { 'tessera.io/tenant': 'research', 'resource.kubernetes.io/admin-access': 'true' },
    },
  };
  const before = {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'research-a', labels: { 'tessera.io/tenant': 'research' } },
  };
  const bob = admitObject('Namespace', labelled, { old: before });
  t.equal(bob.allowed, false);
  t.match(
    bob.message,
    /bob@acme.example may not set resource.kubernetes.io\/admin-access=true on namespace research-a: the label lets ResourceClaims with adminAccess reach devices other tenants' pods use; only platform admins \(alice@acme.example, group platform-admins\) may set it/,
  );
  t.match(
    admitObject('Namespace', before, { old: labelled }).message,
    /may not remove resource.kubernetes.io\/admin-access=true/,
  );
  t.equal(admitObject('Namespace', labelled, { old: before, user: ALICE }).allowed, true);
  const created = admitObject('Namespace', { ...labelled, metadata: { ...labelled.metadata, name: 'new' } });
  t.match(created.message, /may not set resource.kubernetes.io\/admin-access=true on namespace new/);
});

t.test(
  'consumable capacity: a claim on a shareable class counts its memory; a fraction annotation says which claim to write',
  async (t) => {
    const sharing = examplePolicy(
      DRA_POLICY_TEXT.replace(
        'deviceClasses: [gpu.nvidia.com, mig.nvidia.com]',
        'deviceClasses: [gpu.nvidia.com, mig.nvidia.com, shared.gpu.nvidia.com]',
      ),
    );
    const objects = [
      ...OBJECTS,
      deviceClass(
        'shared.gpu.nvidia.com',
        "device.driver == 'gpu.nvidia.com' && device.allowMultipleAllocations == true",
      ),
      claimTemplate('quarter', 'research-a', [
        exactly('gpu', 'shared.gpu.nvidia.com', { capacity: { requests: { memory: '20Gi' } } }),
      ]),
    ];
    const cluster = (pods: KubePod[]) => staticClusterView(NAMESPACES, pods, staticDraLookup(objects));
    const run = (p: KubePod, pods: KubePod[] = []) => {
      const r = runAdmission(review('Pod', p), sharing, cluster(pods), CONFIG);
      return { allowed: r.response.allowed, message: r.response.status?.message ?? '' };
    };
    const held = Array.from({ length: 3 }, (_, i) => running(`h${i}`, 'research-a', { g: { template: 'four-gpus' } }));
    const q = run(withClaims(tenantPod('q'), { gpu: { template: 'quarter' } }), held);
    t.equal(q.allowed, false);
    t.match(
      q.message,
      /12 are held by 3 pod\(s\) and this pod needs 0.251/,
      '20 GiB of an 80 GB H100 is about a quarter',
    );
    t.equal(run(withClaims(tenantPod('q2'), { gpu: { template: 'quarter' } })).allowed, true);
    const annotated = run(
      tenantPod('f').annotate('tessera.io/pool', 'dra-h100').annotate('tessera.io/gpu-fraction', '0.25').build(),
    );
    t.match(
      annotated.message,
      /pool dra-h100 shares GPUs through DRA: its DeviceClass shared.gpu.nvidia.com lets several claims hold one device, but a share is asked for with a claim, not an annotation. Create a ResourceClaimTemplate with a request for deviceClassName shared.gpu.nvidia.com and capacity.requests.memory 20390Mi/,
    );
  },
);
