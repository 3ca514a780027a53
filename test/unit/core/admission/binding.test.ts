import t from 'tap';
import { staticClusterView } from '../../../../core/admission/cluster-view.ts';
import { runAdmission } from '../../../../core/admission/pipeline.ts';
import type { UserInfo } from '../../../../core/admission/request.ts';
import { validationResponse } from '../../../../core/admission/responses.ts';
import { validateRequest } from '../../../../core/admission/validation.ts';
import { pod } from '../../../fixtures/pods.ts';
import { staticDraLookup } from '../../../../core/dra/lookup.ts';
import {
  admit,
  ALICE,
  BOB,
  bindingRequest,
  CONFIG,
  examplePolicy,
  EXTENDER,
  NAMESPACES,
  view,
} from '../../../fixtures/admission.ts';
import { claimTemplate, DRA_POLICY_TEXT, exactly, NVIDIA_CLASSES } from '../../../fixtures/dra.ts';

const policy = examplePolicy();
const SCHEDULER: UserInfo = { username: 'system:kube-scheduler', groups: ['system:authenticated'] };
const ASSIGNMENT = { 'tessera.io/assignment': '{"node":"h1","gpus":[{"index":0,"milli":500,"memoryMiB":40779}]}' };
const VISIBLE = { 'tessera.io/visible-devices': '0' };

// The pods as the webhook's cache holds them: admitted (mutated) and pending.
const gpu = admit(
  pod('train')
    .ns('research-a')
    .uid('uid-train')
    .label('team', 'vision')
    .label('cost-center', '1234')
    .annotate('tessera.io/gpu-fraction', '0.5')
    .build(),
  policy,
).pod;
const mig = admit(
  pod('slice')
    .ns('research-a')
    .uid('uid-slice')
    .label('team', 'vision')
    .label('cost-center', '1234')
    .annotate('tessera.io/pool', 'a100-mig')
    .annotate('tessera.io/gpu-fraction', '0.25')
    .build(),
  policy,
).pod;
const web = admit(pod('web').ns('research-a').uid('uid-web').cpu('1').build(), policy).pod;
const cluster = view([gpu, mig, web]);
const target = (p: typeof gpu) => ({
  namespace: p.metadata!.namespace!,
  name: p.metadata!.name!,
  uid: p.metadata!.uid!,
});
const verdict = (...args: Parameters<typeof bindingRequest>) =>
  validateRequest(bindingRequest(...args), policy, cluster, CONFIG);
const messages = (v: ReturnType<typeof verdict>) => v.violations.map((x) => `[${x.rule}] ${x.message}`).join('\n');

t.test('the extender binds GPU pods with the assignment in the Binding', async (t) => {
  t.equal(gpu.spec!.containers![0]!.resources!.limits!['tessera.io/gpu-milli'], '500', 'the fixture is a GPU pod');
  const v = verdict(target(gpu), 'h1', { user: EXTENDER, annotations: { ...ASSIGNMENT, ...VISIBLE } });
  t.same(v, { allowed: true, violations: [] });
  t.ok(verdict(target(mig), 'a1', { user: EXTENDER }).allowed, 'device-plugin nodes: a plain Binding');
});

t.test('nobody else binds a GPU pod, whoever they are', async (t) => {
  for (const user of [BOB, ALICE, SCHEDULER]) {
    const v = verdict(target(gpu), 'h1', { user });
    t.notOk(v.allowed, `${user.username} is refused`);
    t.match(
      messages(v),
      new RegExp(
        `^\\[tessera/accounting\\] pod research-a/train asks for tessera.io/gpu-milli, so only Tessera's extender may bind it \\(it commits the GPU assignment in the same write\\); ${user.username} may not. Leave the pod to tessera-scheduler.`,
      ),
    );
  }
  t.match(
    messages(verdict(target(mig), 'a1', { user: SCHEDULER })),
    /asks for nvidia.com\/mig-2g.20gb.*If kube-scheduler sent this Binding itself, it did not ask the extender: list nvidia.com\/mig-2g.20gb in the extender's managedResources/,
    'the denial names the likely cause when kube-scheduler bound a GPU pod without the extender',
  );
  t.notOk(verdict(target(gpu), 'h1', { legacy: true }).allowed, 'the older bindings resource is the same door');
});

t.test('Bindings of other pods pass, unless they carry system-owned names', async (t) => {
  t.same(verdict(target(web), 'n1', { user: SCHEDULER }), { allowed: true, violations: [] }, 'kube-scheduler');
  t.ok(verdict(target(web), 'n1', { user: BOB }).allowed, 'anyone RBAC lets bind');
  t.ok(
    verdict(target(web), 'n1', {
      user: SCHEDULER,
      labels: { 'topology.kubernetes.io/zone': 'eu-1a', 'topology.kubernetes.io/region': 'eu-1' },
    }).allowed,
    'the topology labels kube-apiserver adds to Bindings (PodTopologyLabelsAdmission)',
  );
  const forged = verdict(target(web), 'n1', {
    user: SCHEDULER,
    annotations: { ...VISIBLE, 'tessera.io/policy-revision': 'abc', 'example.com/note': 'x' },
    labels: { 'tessera.io/tenant': 'payments-ml' },
  });
  t.notOk(forged.allowed);
  t.equal(
    messages(forged),
    [
      "[tessera/system-owned] the Binding of pod research-a/web sets annotation tessera.io/visible-devices, which only Tessera's extender writes, in its own Binding when it commits a placement; system:kube-scheduler may not. Remove it from the Binding",
      '[tessera/system-owned] the Binding of pod research-a/web sets annotation tessera.io/policy-revision, which Tessera stamps at admission; system:kube-scheduler may not. Remove it from the Binding',
      "[tessera/tenancy] the Binding of pod research-a/web sets label tessera.io/tenant, which Tessera sets at admission from the namespace's tenant; remove it from the Binding",
    ].join('\n'),
  );
  t.match(validationResponse('u', forged, policy).status, {
    code: 403,
    message: /^Tessera denied this request \(3 problems\):\n- \[tessera\/system-owned\]/,
  });
  const both = verdict(target(gpu), 'h1', { user: BOB, annotations: ASSIGNMENT });
  t.same(
    both.violations.map((v) => v.rule),
    ['tessera/system-owned', 'tessera/accounting'],
    'every problem is listed',
  );
});

t.test('a pod the API does not have: only the Binding itself is judged', async (t) => {
  const ghost = { namespace: 'research-a', name: 'ghost', uid: 'uid-ghost' };
  t.ok(verdict(ghost, 'n1', { user: BOB }).allowed, 'the API server answers NotFound itself');
  t.notOk(verdict(ghost, 'n1', { user: BOB, annotations: ASSIGNMENT }).allowed);
});

t.test('the admission pipeline leaves Bindings unmutated', async (t) => {
  const r = runAdmission(bindingRequest(target(gpu), 'h1', { user: BOB }), policy, cluster, CONFIG);
  t.equal(r.response.patch, undefined);
  t.equal(r.deniedBy, 'validation');
  t.equal(
    runAdmission(
      bindingRequest(target(gpu), 'h1', { user: EXTENDER, annotations: ASSIGNMENT }),
      policy,
      cluster,
      CONFIG,
    ).response.allowed,
    true,
  );
});

t.test('a pod that reaches GPUs through DRA claims is a GPU pod here too', async (t) => {
  const dra = examplePolicy(DRA_POLICY_TEXT);
  const objects = [
    ...NVIDIA_CLASSES,
    claimTemplate('one-gpu', 'research-a', [exactly('gpu', 'gpu.nvidia.com')]),
    claimTemplate('nic', 'research-a', [exactly('nic', 'nic.example.com')]),
  ];
  const withClaim = (name: string, template: string) => {
    const p = pod(name).ns('research-a').uid(`uid-${name}`).limit('tessera.io/dra-claims', '1').build();
    p.spec!.resourceClaims = [{ name: 'c', resourceClaimTemplateName: template }];
    p.spec!.containers![0]!.resources!.claims = [{ name: 'c' }];
    return p;
  };
  const claims = staticClusterView(
    NAMESPACES,
    [withClaim('trainer', 'one-gpu'), withClaim('router', 'nic')],
    staticDraLookup(objects),
  );
  const bind = (name: string, user: UserInfo) =>
    validateRequest(
      bindingRequest({ namespace: 'research-a', name, uid: `uid-${name}` }, 'n1', { user }),
      dra,
      claims,
      CONFIG,
    );
  const denied = bind('trainer', SCHEDULER);
  t.notOk(denied.allowed);
  t.match(
    denied.violations[0]!.message,
    /pod research-a\/trainer asks for GPU claims \(c\), so only Tessera's extender may bind it.*list tessera.io\/dra-claims in the extender's managedResources/,
  );
  t.ok(bind('trainer', EXTENDER).allowed, 'the extender binds it');
  t.ok(bind('router', SCHEDULER).allowed, 'a claim for something else than GPUs is not a GPU pod');
});
