// The webhook over HTTPS with DRA payloads: pods with claims, ResourceClaims and ResourceClaimTemplates, extended
// resources backed by DRA, and the admin-access namespace label, as the API server sends them.

import t from 'tap';
import jsonPatch from 'fast-json-patch';
import { pino } from 'pino';
import { staticClusterView } from '../../core/admission/cluster-view.ts';
import { staticDraLookup } from '../../core/dra/lookup.ts';
import { webhookOverHttps } from '../fixtures/webhook-over-https.ts';
import { postJson as post } from '../fixtures/https-json.ts';
import { ALICE, BOB, NAMESPACES } from '../fixtures/admission.ts';
import { claim, claimTemplate, DRA_POLICY_TEXT, exactly, NVIDIA_CLASSES } from '../fixtures/dra.ts';

const log = pino({ level: 'silent' });

let uid = 0;
const review = (kind: string, group: string, resource: string, object: any, extra: object = {}) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: `dra-${++uid}`,
    kind: { group, version: 'v1', kind },
    resource: { group, version: 'v1', resource },
    namespace: object.metadata?.namespace ?? '',
    name: object.metadata?.name ?? '',
    operation: 'CREATE',
    userInfo: BOB,
    object,
    ...extra,
  },
});

const claimPod = (name: string, namespace: string, template: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace, labels: { team: 'vision', 'cost-center': '1234' } },
  spec: {
    resourceClaims: [{ name: 'gpu', resourceClaimTemplateName: template }],
    containers: [
      { name: 'main', image: 'registry.eu.acme.example/train:1', resources: { claims: [{ name: 'gpu' }] } },
      { name: 'logs', image: 'registry.eu.acme.example/logs:1' },
    ],
  },
});

t.test('the webhook over HTTPS with DRA objects', async (t) => {
  const objects = [
    ...NVIDIA_CLASSES,
    claimTemplate('one-gpu', 'research-a', [exactly('gpu', 'gpu.nvidia.com')]),
    claimTemplate('one-gpu', 'pay', [exactly('gpu', 'gpu.nvidia.com')]),
  ];
  const { hook, caPem } = await webhookOverHttps(t, {
    policyText: DRA_POLICY_TEXT,
    view: staticClusterView(NAMESPACES, [], staticDraLookup(objects)),
    log: log,
  });
  const pem = caPem;

  await t.test('a claim pod is pinned, marked for the extender and passes validation', async (t) => {
    const p = claimPod('train', 'research-a', 'one-gpu');
    const m = await post(hook.url, '/mutate', review('Pod', '', 'pods', p), pem);
    t.match(m.body.response, { allowed: true, patchType: 'JSONPatch' });
    const ops = JSON.parse(Buffer.from(m.body.response.patch, 'base64').toString());
    const patched = jsonPatch.applyPatch(structuredClone(p), ops, true, false).newDocument as any;
    t.equal(patched.spec.schedulerName, 'tessera-scheduler');
    t.equal(patched.metadata.annotations['tessera.io/pool'], 'dra-h100');
    t.same(patched.spec.containers[0].resources.limits, { 'tessera.io/dra-claims': '1' });
    t.match(patched.spec.containers[1].env, [{ name: 'NVIDIA_VISIBLE_DEVICES', value: 'void' }]);
    const v = await post(hook.url, '/validate', review('Pod', '', 'pods', patched), pem);
    t.match(v.body.response, { allowed: true });
  });

  await t.test('denials name the problem and the fix', async (t) => {
    const p = claimPod('sneak', 'pay', 'one-gpu');
    const m = await post(hook.url, '/mutate', review('Pod', '', 'pods', p), pem);
    const ops = JSON.parse(Buffer.from(m.body.response.patch, 'base64').toString());
    const patched = jsonPatch.applyPatch(structuredClone(p), ops, true, false).newDocument;
    const v = await post(hook.url, '/validate', review('Pod', '', 'pods', patched), pem);
    t.match(v.body.response, {
      allowed: false,
      status: {
        code: 403,
        message:
          /\[tessera\/tenancy\] ResourceClaimTemplate one-gpu request gpu names DeviceClass gpu.nvidia.com, a GPU class that no pool of tenant payments-ml lists; tenant payments-ml has no dra pool/,
      },
    });
    const c = await post(
      hook.url,
      '/validate',
      review(
        'ResourceClaim',
        'resource.k8s.io',
        'resourceclaims',
        claim('four', 'pay', [exactly('gpu', 'gpu.nvidia.com', { count: 4 })]),
      ),
      pem,
    );
    t.match(c.body.response, {
      allowed: false,
      status: { message: /ResourceClaim four: request gpu names DeviceClass gpu.nvidia.com/ },
    });
    const tpl = await post(
      hook.url,
      '/validate',
      review(
        'ResourceClaimTemplate',
        'resource.k8s.io',
        'resourceclaimtemplates',
        claimTemplate('adm', 'research-a', [exactly('gpu', 'gpu.nvidia.com', { adminAccess: true })]),
      ),
      pem,
    );
    t.match(tpl.body.response, {
      allowed: false,
      status: { message: /asks for adminAccess to gpu.nvidia.com devices/ },
    });
    const ext = await post(
      hook.url,
      '/validate',
      review('Pod', '', 'pods', {
        metadata: { name: 'e', namespace: 'plain' },
        spec: {
          containers: [
            {
              name: 'c',
              image: 'x',
              resources: { limits: { 'deviceclass.resource.kubernetes.io/gpu.nvidia.com': '1' } },
            },
          ],
        },
      }),
      pem,
    );
    t.match(ext.body.response, {
      allowed: false,
      status: { message: /namespace plain has no tessera.io\/tenant label/ },
    });
  });

  await t.test('the admin-access namespace label is guarded', async (t) => {
    const before = { metadata: { name: 'research-a', labels: { 'tessera.io/tenant': 'research' } } };
    const after = {
      metadata: {
        name: 'research-a',
        labels: { 'tessera.io/tenant': 'research', 'resource.kubernetes.io/admin-access': 'true' },
      },
    };
    const bob = await post(
      hook.url,
      '/validate',
      review('Namespace', '', 'namespaces', after, { operation: 'UPDATE', oldObject: before }),
      pem,
    );
    t.match(bob.body.response, {
      allowed: false,
      status: { message: /may not set resource.kubernetes.io\/admin-access=true/ },
    });
    const alice = await post(
      hook.url,
      '/validate',
      review('Namespace', '', 'namespaces', after, { operation: 'UPDATE', oldObject: before, userInfo: ALICE }),
      pem,
    );
    t.match(alice.body.response, { allowed: true });
  });
});
