import t from 'tap';
import type jsonPatch from 'fast-json-patch';
import { mutateRequest } from '../../../../core/admission/mutate.ts';
import { mutationResponse, validationResponse } from '../../../../core/admission/responses.ts';
import { validateRequest } from '../../../../core/admission/validation.ts';
import type { AdmissionRequest } from '../../../../core/admission/request.ts';
import type { KubePod } from '../../../../core/kube-objects.ts';
import { pod } from '../../../fixtures/pods.ts';
import {
  admit,
  ALICE,
  BOB,
  CONFIG,
  EXAMPLE_POLICY_TEXT,
  examplePolicy,
  EXTENDER,
  ns,
  podRequest,
  view,
} from '../../../fixtures/admission.ts';

const policy = examplePolicy();
const good = (name: string, namespace = 'research-a') =>
  pod(name).ns(namespace).label('team', 'vision').label('cost-center', '1234');
const rules = (a: ReturnType<typeof admit>) => (a.verdict?.violations ?? []).map((v) => `${v.action}:${v.rule}`);

t.test('a well-formed tenant GPU pod is admitted; warn and audit rules report without denying', async (t) => {
  const a = admit(good('ok').annotate('tessera.io/gpu-fraction', '0.5').build(), policy);
  t.equal(a.denial, null);
  t.same(rules(a), ['audit:gpu-runtime-class'], 'runtime class is audited');
  const r = validationResponse('u1', a.verdict!, policy);
  t.equal(r.allowed, true);
  t.match(r.auditAnnotations, {
    'policy-audit-gpu-runtime-class': /runtimeClassName nvidia/,
    'policy-revision': policy.revision,
  });
  const unlabelled = admit(pod('w').ns('research-a').annotate('tessera.io/gpu-fraction', '0.5').build(), policy);
  t.equal(unlabelled.denial, null, 'warn does not deny');
  const warned = validationResponse('u2', unlabelled.verdict!, policy);
  t.match(warned.warnings, [
    /\[chargeback-labels\] label cost-center is missing; add it/,
    /\[chargeback-labels\] label team is missing/,
  ]);
});

t.test('tenant isolation', async (t) => {
  t.match(
    admit(pod('a').ns('plain').annotate('tessera.io/gpu-fraction', '0.5').build(), policy).denial,
    /namespace plain has no tessera.io\/tenant label.*ask a platform admin/,
  );
  t.match(
    admit(pod('a').ns('ghost').limit('nvidia.com/gpu', '1').build(), policy).denial,
    /tenant "nobody", which the policy does not define/,
  );
  const foreign = good('t').annotate('tessera.io/gpu-fraction', '0.5').build();
  foreign.spec!.tolerations = [
    { key: 'tessera.io/pool', operator: 'Equal', value: 'sovereign-eu', effect: 'NoSchedule' },
  ];
  t.match(admit(foreign, policy).denial, /tolerates the taint of pool sovereign-eu, which tenant research may not use/);
  const everything = good('e').build();
  everything.spec!.tolerations = [{ operator: 'Exists' }];
  t.match(admit(everything, policy).denial, /tolerates every taint/);
  const bound = good('n').annotate('tessera.io/gpu-fraction', '0.5').build();
  bound.spec!.nodeName = 'h100-3';
  t.match(admit(bound, policy).denial, /\[tessera\/accounting\] spec.nodeName=h100-3 bypasses the scheduler/);
  const other = good('s').annotate('tessera.io/gpu-fraction', '0.5').build();
  other.spec!.schedulerName = 'volcano';
  t.match(admit(other, policy).denial, /schedulerName volcano is not Tessera's/);
  const pc = good('pc').annotate('tessera.io/gpu-fraction', '0.5').build();
  pc.spec!.priorityClassName = 'system-cluster-critical';
  t.match(
    admit(pc, policy).denial,
    /priority class system-cluster-critical is not allowed for tenant research; use one of research-batch, research-interactive/,
  );
  t.match(
    admit(good('big').annotate('tessera.io/gpu-count', '9').build(), policy).denial,
    /asks for 9 GPU-equivalents; tenant research allows at most 8 per pod/,
  );
  const unpinned = admit(good('u').annotate('tessera.io/gpu-fraction', '0.5').build(), policy).pod;
  delete unpinned.spec!.affinity;
  t.match(
    validateRequest(podRequest(unpinned), policy, view(), CONFIG)
      .violations.map((v) => v.message)
      .join(),
    /not pinned to pool shared-h100/,
  );
  const nonGpuWithPool = good('np').annotate('tessera.io/pool', 'sovereign-eu').build();
  t.match(admit(nonGpuWithPool, policy).denial, /tessera.io\/pool=sovereign-eu is not a pool of tenant research/);
});

t.test('every GPU bypass path is closed', async (t) => {
  const env = good('env').annotate('tessera.io/gpu-fraction', '0.5').build();
  env.spec!.containers![0]!.env = [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'all' }];
  t.match(admit(env, policy).denial, /container main sets NVIDIA_VISIBLE_DEVICES/);
  const initEnv = good('ie')
    .init({ name: 'warm', image: 'registry.example/x', env: [{ name: 'NVIDIA_VISIBLE_DEVICES', value: '0' }] })
    .build();
  t.match(
    admit(initEnv, policy).denial,
    /container warm sets NVIDIA_VISIBLE_DEVICES/,
    'in init containers of non-GPU pods too',
  );
  const caps = good('caps').annotate('tessera.io/gpu-fraction', '0.5').build();
  caps.spec!.containers![0]!.env = [{ name: 'NVIDIA_DRIVER_CAPABILITIES', value: 'all' }];
  t.match(admit(caps, policy).denial, /\[no-gpu-bypass\] container main sets NVIDIA_DRIVER_CAPABILITIES/);
  const priv = good('priv').build();
  priv.spec!.containers![0]!.securityContext = { privileged: true };
  t.match(admit(priv, policy).denial, /\[no-gpu-bypass\] container main is privileged/);
  const host = good('host').build();
  host.spec!.volumes = [{ name: 'dev', hostPath: { path: '/dev/nvidia0' } }];
  t.match(admit(host, policy).denial, /volume dev mounts host path \/dev\/nvidia0/);
  const forged = good('forged')
    .annotate('tessera.io/gpu-fraction', '0.5')
    .annotate('tessera.io/assignment', '{"node":"x","gpus":[{"index":0,"milli":1000,"memoryMiB":1}]}')
    .annotate('tessera.io/visible-devices', '0,1,2,3')
    .build();
  const f = admit(forged, policy);
  t.match(f.denial, /annotation tessera.io\/assignment is written only by Tessera's extender at bind/);
  t.match(f.denial, /annotation tessera.io\/visible-devices is written only/);
  const foreignSched = pod('fs').ns('plain').annotate('tessera.io/assignment', '{}').build();
  foreignSched.spec!.schedulerName = 'my-scheduler';
  t.match(
    admit(foreignSched, policy).denial,
    /tessera.io\/assignment is written only by Tessera/,
    'whatever the schedulerName',
  );
  const relaxed = examplePolicy(
    EXAMPLE_POLICY_TEXT.replace(/kind: GpuBypass\n {6}action: enforce/, 'kind: GpuBypass\n      action: warn'),
  );
  t.equal(admit(priv, relaxed).denial, null, 'the GpuBypass action is the security team’s to choose');
  t.match(
    admit(env, relaxed).denial,
    /\[tessera\/accounting\]/,
    'but choosing GPUs by hand stays denied: accounting depends on it',
  );
});

t.test('ephemeral containers: mutated to void, and checked', async (t) => {
  const running = admit(good('dbg').annotate('tessera.io/gpu-fraction', '0.5').build(), policy).pod;
  const withDebug = structuredClone(running);
  withDebug.spec!.ephemeralContainers = [{ name: 'debug', image: 'registry.example/busybox' }];
  const m = mutateRequest(
    podRequest(withDebug, { operation: 'UPDATE', old: running, subResource: 'ephemeralcontainers' }),
    policy,
    view(),
  );
  t.same(m.patch, [
    { op: 'add', path: '/spec/ephemeralContainers/0/env', value: [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'void' }] },
  ]);
  const sneaky = structuredClone(running);
  sneaky.spec!.ephemeralContainers = [
    { name: 'debug', image: 'registry.example/busybox', env: [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'all' }] },
  ];
  const v = validateRequest(
    podRequest(sneaky, { operation: 'UPDATE', old: running, subResource: 'ephemeralcontainers' }),
    policy,
    view(),
    CONFIG,
  );
  t.notOk(v.allowed);
  t.match(v.violations[0]!.message, /container debug sets NVIDIA_VISIBLE_DEVICES/);
});

t.test('UPDATE guards: immutable fields and system-owned names', async (t) => {
  const running = admit(good('live').annotate('tessera.io/gpu-fraction', '0.5').build(), policy).pod;
  const edited = structuredClone(running);
  edited.metadata!.annotations!['tessera.io/gpu-fraction'] = '1';
  edited.metadata!.labels!.team = 'other';
  const v = validateRequest(podRequest(edited, { operation: 'UPDATE', old: running }), policy, view(), CONFIG);
  t.notOk(v.allowed);
  t.match(
    v.violations.map((x) => x.message).join('\n'),
    /annotation tessera.io\/gpu-fraction may not change after admission \(was "0.5", now "1"\)[\s\S]*label team may not change/,
  );
  const stamped = structuredClone(running);
  stamped.metadata!.annotations!['tessera.io/assignment'] = '{"node":"n","gpus":[]}';
  t.notOk(
    validateRequest(podRequest(stamped, { operation: 'UPDATE', old: running }), policy, view(), CONFIG).allowed,
    'users cannot write the assignment',
  );
  t.ok(
    validateRequest(podRequest(stamped, { operation: 'UPDATE', old: running, user: EXTENDER }), policy, view(), CONFIG)
      .allowed,
    'the extender can',
  );
  const revised = structuredClone(running);
  revised.metadata!.annotations!['tessera.io/policy-revision'] = 'abc';
  t.match(
    validateRequest(podRequest(revised, { operation: 'UPDATE', old: running }), policy, view(), CONFIG).violations[0]!
      .message,
    /records the policy that admitted the pod/,
  );
  const harmless = structuredClone(running);
  harmless.metadata!.labels!['app'] = 'x';
  t.ok(
    validateRequest(podRequest(harmless, { operation: 'UPDATE', old: running }), policy, view(), CONFIG).allowed,
    'other edits pass',
  );
});

t.test('GpuRequest bounds, registries, runtime class', async (t) => {
  t.match(
    admit(good('tiny').annotate('tessera.io/gpu-fraction', '0.01').build(), policy).denial,
    /\[gpu-request-bounds\] the pod asks for 0.01 of a GPU; the minimum is 0.05/,
  );
  t.match(
    admit(
      good('mem').annotate('tessera.io/gpu-fraction', '0.5').annotate('tessera.io/gpu-memory', '100Gi').build(),
      policy,
    ).denial,
    /asks for 102400 MiB; the maximum is 81920 MiB/,
  );
  t.match(
    admit(good('req').request('nvidia.com/gpu', '1').build(), policy).denial,
    /\[tessera\/gpu-request\] .*container main requests nvidia.com\/gpu without a limit; set GPU resources as limits/,
  );
  const pay = pod('p')
    .ns('pay')
    .label('team', 't')
    .label('cost-center', '1111')
    .annotate('tessera.io/gpu-count', '1')
    .build();
  t.match(
    admit(pay, policy).denial,
    /\[eu-registry-only\] container main uses image "registry.example\/app:1", which is not from an allowed registry \(registry.eu.acme.example\/\)/,
  );
  pay.spec!.containers![0]!.image = 'registry.eu.acme.example/risk:2';
  t.equal(admit(pay, policy).denial, null, 'the EU registry passes');
  t.equal(
    admit(good('reg').annotate('tessera.io/gpu-count', '1').build(), policy).denial,
    null,
    'the registry rule matches only payments-ml',
  );
  const malformed = admit(good('bad').annotate('tessera.io/gpu-fraction', 'lots').build(), policy);
  t.match(
    malformed.denial,
    /\[tessera\/gpu-request\] metadata.annotations\["tessera.io\/gpu-fraction"\]: tessera.io\/gpu-fraction="lots" is not a number/,
  );
});

t.test('quota in GPU-equivalents over the tenant’s non-terminated pods', async (t) => {
  const existing: KubePod[] = [];
  for (let i = 0; i < 11; i++)
    existing.push(
      admit(
        good(`w${i}`, i % 2 ? 'research-a' : 'research-b')
          .uid(`w${i}`)
          .annotate('tessera.io/gpu-count', '1')
          .build(),
        policy,
      ).pod,
    );
  existing.push(
    admit(
      good('m').uid('m').annotate('tessera.io/pool', 'a100-mig').annotate('tessera.io/mig-profile', '3g.40gb').build(),
      policy,
    ).pod,
  );
  const done = admit(good('done').uid('done').annotate('tessera.io/gpu-count', '4').build(), policy).pod;
  done.status = { phase: 'Succeeded' };
  existing.push(done);
  const cluster = view(existing);
  t.equal(
    cluster.tenantUsage('research', policy, null).equivalents.toFixed(3),
    (11 + 3 / 7).toFixed(3),
    'a 3g instance weighs 3/7; finished pods weigh nothing',
  );
  t.equal(admit(good('fits').annotate('tessera.io/gpu-fraction', '0.5').build(), policy, cluster).denial, null);
  t.match(
    admit(good('over').annotate('tessera.io/gpu-count', '1').build(), policy, cluster).denial,
    /tenant research has a quota of 12 GPU-equivalents; 11.429 are held by 12 pod\(s\) and this pod needs 1/,
  );
  t.equal(
    admit(
      pod('x').ns('pay').label('team', 't').label('cost-center', '1111').annotate('tessera.io/gpu-count', '1').build(),
      policy,
      cluster,
    ).denial?.includes('quota') ?? false,
    false,
    'other tenants are unaffected',
  );
});

t.test('Namespace guard: only admins set or change tessera.io/tenant', async (t) => {
  const req = (operation: 'CREATE' | 'UPDATE', object: unknown, old: unknown, user = BOB): AdmissionRequest => ({
    uid: 'n',
    kind: { group: '', version: 'v1', kind: 'Namespace' },
    operation,
    userInfo: user,
    object,
    ...(old ? { oldObject: old } : {}),
  });
  t.match(validateRequest(req('CREATE', ns('mine', 'research'), null), policy, view(), CONFIG), {
    allowed: false,
    violations: [
      {
        message:
          /bob@acme.example may not set tessera.io\/tenant=research on namespace mine; only platform admins \(alice@acme.example, group platform-admins\) may/,
      },
    ],
  });
  t.match(
    validateRequest(
      req('UPDATE', ns('research-a', 'payments-ml'), ns('research-a', 'research')),
      policy,
      view(),
      CONFIG,
    ),
    { allowed: false },
  );
  t.match(
    validateRequest(req('UPDATE', ns('research-a'), ns('research-a', 'research')), policy, view(), CONFIG)
      .violations[0]!.message,
    /may not remove/,
  );
  t.ok(
    validateRequest(req('CREATE', ns('mine', 'research'), null, ALICE), policy, view(), CONFIG).allowed,
    'an admin may',
  );
  t.ok(
    validateRequest(req('CREATE', ns('mine'), null), policy, view(), CONFIG).allowed,
    'namespaces without a tenant are anyone’s',
  );
  t.match(validateRequest(req('CREATE', ns('new', 'typo'), null, ALICE), policy, view(), CONFIG).violations, [
    { action: 'warn', message: /tenant "typo" is not defined/ },
  ]);
});

t.test('workload templates are checked at their own admission', async (t) => {
  const template = (kind: string, p: KubePod) => {
    const tpl = { metadata: p.metadata, spec: p.spec };
    const object =
      kind === 'CronJob' ? { spec: { jobTemplate: { spec: { template: tpl } } } } : { spec: { template: tpl } };
    return {
      uid: 'w',
      kind: { group: kind === 'Job' || kind === 'CronJob' ? 'batch' : 'apps', version: 'v1', kind },
      namespace: 'research-a',
      operation: 'CREATE' as const,
      userInfo: BOB,
      object,
    };
  };
  const bad = good('t').annotate('tessera.io/gpu-fraction', '2').build();
  for (const kind of ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob']) {
    const v = validateRequest(template(kind, bad), policy, view(), CONFIG);
    t.notOk(v.allowed, `${kind} with a bad template is denied`);
    t.match(v.violations[0]!.message, new RegExp(`^${kind} spec.*template: .*outside 0 < f <= 1`));
  }
  t.ok(
    validateRequest(
      template('Deployment', good('ok').annotate('tessera.io/gpu-fraction', '0.5').build()),
      policy,
      view(),
      CONFIG,
    ).allowed,
    'a good template passes before mutation',
  );
  const forged = good('f').annotate('tessera.io/policy-revision', 'x').build();
  t.match(
    validateRequest(template('Job', forged), policy, view(), CONFIG).violations[0]!.message,
    /stamped by Tessera at admission; remove it from the template/,
  );
});

t.test('responses follow admission.k8s.io/v1: uid echoed, base64 JSON Patch, 403 with every problem', async (t) => {
  const p = good('r').annotate('tessera.io/gpu-fraction', '0.5').build();
  const r = mutationResponse('abc', mutateRequest(podRequest(p), policy, view()));
  t.equal(r.uid, 'abc');
  t.equal(r.patchType, 'JSONPatch');
  const ops = JSON.parse(Buffer.from(r.patch!, 'base64').toString()) as jsonPatch.Operation[];
  t.ok(ops.some((o) => o.path === '/spec/schedulerName'));
  const bad = good('b').annotate('tessera.io/gpu-fraction', '0.01').build();
  bad.spec!.priorityClassName = 'nope';
  const a = admit(bad, policy);
  const denied = validationResponse('def', a.verdict!, policy);
  t.match(denied, {
    uid: 'def',
    allowed: false,
    status: {
      code: 403,
      reason: 'Forbidden',
      message:
        /^Tessera denied this request \(2 problems\):\n- \[tessera\/tenancy\] priority class nope[\s\S]*\n- \[gpu-request-bounds\]/,
    },
  });
});

t.test('a pod stamped just before a policy hot reload is not taken for a forgery', async (t) => {
  const mutated = admit(good('race').annotate('tessera.io/gpu-fraction', '0.5').build(), policy).pod;
  mutated.metadata!.annotations!['tessera.io/policy-revision'] = 'older-revision';
  t.match(
    validateRequest(podRequest(mutated), policy, view(), CONFIG)
      .violations.map((v) => v.message)
      .join(),
    /not the policy revision Tessera stamps/,
  );
  t.ok(
    validateRequest(podRequest(mutated), policy, view(), { ...CONFIG, recentRevisions: new Set(['older-revision']) })
      .allowed,
    'the revision served just before is accepted',
  );
});

t.test('an UPDATE is judged by what it changes, not by drift the pod already had', async (t) => {
  const running = admit(good('old').annotate('tessera.io/gpu-fraction', '0.5').build(), policy).pod;
  const strict = examplePolicy(
    EXAMPLE_POLICY_TEXT.replace('match: { tenants: [payments-ml] }', 'match: { tenants: [payments-ml, research] }'),
  );
  const finalizer = structuredClone(running);
  finalizer.metadata!.labels!['app'] = 'x';
  const v = validateRequest(podRequest(finalizer, { operation: 'UPDATE', old: running }), strict, view(), CONFIG);
  t.ok(v.allowed, 'a label edit on a pod that drifted under a new registry rule goes through');
  const swapped = structuredClone(running);
  swapped.spec!.containers![0]!.image = 'docker.io/other:2';
  const w = validateRequest(podRequest(swapped, { operation: 'UPDATE', old: running }), strict, view(), CONFIG);
  t.notOk(w.allowed, 'but an edit that brings a new violation is denied');
  t.match(w.violations[0]!.message, /docker.io\/other:2/);
});

t.test('a Deployment update keeps working when only old findings remain', async (t) => {
  const tpl = good('d').annotate('tessera.io/gpu-fraction', '0.5').build();
  tpl.spec!.containers![0]!.image = 'docker.io/old:1';
  const strict = examplePolicy(
    EXAMPLE_POLICY_TEXT.replace('match: { tenants: [payments-ml] }', 'match: { tenants: [payments-ml, research] }'),
  );
  const deployment = (annotations: Record<string, string>) => ({
    spec: {
      replicas: 2,
      template: {
        metadata: { ...tpl.metadata, annotations: { ...tpl.metadata!.annotations, ...annotations } },
        spec: tpl.spec,
      },
    },
  });
  const req = (object: unknown, oldObject: unknown) => ({
    uid: 'u',
    kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
    namespace: 'research-a',
    operation: 'UPDATE' as const,
    userInfo: BOB,
    object,
    oldObject,
  });
  t.notOk(
    validateRequest({ ...req(deployment({}), undefined), operation: 'CREATE' }, strict, view(), CONFIG).allowed,
    'created today, the template would be denied',
  );
  t.ok(
    validateRequest(
      req(deployment({ 'kubectl.kubernetes.io/restartedAt': 'now' }), deployment({})),
      strict,
      view(),
      CONFIG,
    ).allowed,
    'a rollout restart of the drifted Deployment goes through',
  );
});
