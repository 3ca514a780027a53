// The webhook over HTTPS with pods as vCluster's syncer writes them into its host namespace (the translated name, the
// marker labels, the syncer's service account as the requester): the mutating call's denial of a request the syncer
// would resize back, the validating call's denial of a pod placed by a virtual scheduler, and the syncer's later
// UPDATE of labels and annotations, allowed or denied by what it changes.

import t from 'tap';
import jsonPatch from 'fast-json-patch';
import { staticClusterView } from '../../core/admission/cluster-view.ts';
import { webhookOverHttps } from '../fixtures/webhook-over-https.ts';
import { postJson as post } from '../fixtures/https-json.ts';
import { EXAMPLE_POLICY_TEXT, ns } from '../fixtures/admission.ts';

const SYNCER = {
  username: 'system:serviceaccount:vcluster-team1:vc-team1',
  uid: '6a1f0c1e-1111-4a5b-9c3d-000000000001',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:vcluster-team1', 'system:authenticated'],
};

let uid = 0;
const review = (object: any, extra: object = {}) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: `vc-${++uid}`,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    requestKind: { group: '', version: 'v1', kind: 'Pod' },
    requestResource: { group: '', version: 'v1', resource: 'pods' },
    namespace: 'vcluster-team1',
    name: object.metadata.name,
    operation: 'CREATE',
    userInfo: SYNCER,
    object,
    oldObject: null,
    dryRun: false,
    options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    ...extra,
  },
});

/** A host pod as the syncer creates it (translator.go), after kube-apiserver's defaulting. */
const syncedPod = (name: string, resources: object, extra: { nodeName?: string; annotations?: object } = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: `${name}-x-default-x-team1`,
    namespace: 'vcluster-team1',
    labels: {
      team: 'vision',
      'cost-center': '1234',
      'tessera.io/tenant': 'payments-ml',
      'vcluster.loft.sh/managed-by': 'team1',
      'vcluster.loft.sh/namespace': 'default',
    },
    annotations: {
      'vcluster.loft.sh/name': name,
      'vcluster.loft.sh/namespace': 'default',
      'vcluster.loft.sh/object-kind': '/v1, Kind=Pod',
      ...extra.annotations,
    },
  },
  spec: {
    serviceAccountName: 'vc-workload-team1',
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    schedulerName: 'default-scheduler',
    ...(extra.nodeName ? { nodeName: extra.nodeName } : {}),
    tolerations: [
      { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
    ],
    containers: [{ name: 'main', image: 'registry.example/train:1', resources }],
  },
});

t.test('the webhook over HTTPS with pods synced by vCluster', async (t) => {
  const { hook, caPem } = await webhookOverHttps(t, {
    policyText: EXAMPLE_POLICY_TEXT,
    view: staticClusterView([ns('vcluster-team1', 'research')], []),
  });
  const pem = caPem;
  const admitted = async (p: any) => {
    const m = await post(hook.url, '/mutate', review(p), pem);
    t.match(m.body.response, { allowed: true });
    const ops = JSON.parse(Buffer.from(m.body.response.patch, 'base64').toString());
    return jsonPatch.applyPatch(structuredClone(p), ops, true, false).newDocument as any;
  };

  await t.test('a fraction pod is stamped with the namespace tenant and only gains resource keys', async (t) => {
    const p = syncedPod('frac', { requests: { cpu: '1' } }, { annotations: { 'tessera.io/gpu-fraction': '0.5' } });
    const patched = await admitted(p);
    t.equal(patched.metadata.labels['tessera.io/tenant'], 'research');
    t.same(patched.spec.containers[0].resources, {
      requests: { cpu: '1', 'tessera.io/gpu-milli': '500' },
      limits: { 'tessera.io/gpu-milli': '500' },
    });
    const v = await post(hook.url, '/validate', review(patched), pem);
    t.match(v.body.response, { allowed: true });
  });

  await t.test('nvidia.com/gpu on a fraction pool is denied at the mutating call, with what to write', async (t) => {
    const p = syncedPod('whole', { limits: { 'nvidia.com/gpu': '1' }, requests: { 'nvidia.com/gpu': '1' } });
    const m = await post(hook.url, '/mutate', review(p), pem);
    t.match(m.body.response, {
      allowed: false,
      status: { code: 403, message: /synced from vCluster team1.*limits tessera\.io\/gpu-milli: 1000/s },
    });
  });

  await t.test('a pod placed by the virtual scheduler is denied with the vCluster values', async (t) => {
    const p = syncedPod('placed', {}, { nodeName: 'h100-0', annotations: { 'tessera.io/gpu-fraction': '0.25' } });
    const v = await post(hook.url, '/validate', review(await admitted(p)), pem);
    t.match(v.body.response, {
      allowed: false,
      status: { message: /was set inside vCluster team1.*controlPlane\.distro\.k8s\.scheduler\.enabled: false/s },
    });
  });

  await t.test("the syncer's UPDATE: new tenant labels pass, edits of Tessera's names do not", async (t) => {
    const bound = await admitted(
      syncedPod('run', { requests: { cpu: '1' } }, { annotations: { 'tessera.io/gpu-fraction': '0.5' } }),
    );
    bound.spec.nodeName = 'h100-0';
    bound.metadata.annotations['tessera.io/assignment'] = '{"node":"h100-0","gpus":[{"index":0,"milli":500}]}';
    const update = (edit: (p: any) => void) => {
      const next = structuredClone(bound);
      edit(next);
      return review(next, { operation: 'UPDATE', oldObject: bound, options: { kind: 'UpdateOptions' } });
    };
    const ok = await post(
      hook.url,
      '/validate',
      update((p) => {
        p.metadata.labels.app = 'trainer';
        p.metadata.annotations['vcluster.loft.sh/labels'] = 'app="trainer"';
      }),
      pem,
    );
    t.match(ok.body.response, { allowed: true });
    const forged = await post(
      hook.url,
      '/validate',
      update((p) => {
        p.metadata.annotations['tessera.io/assignment'] = '{"node":"h100-0","gpus":[{"index":7,"milli":1000}]}';
      }),
      pem,
    );
    t.match(forged.body.response, { allowed: false, status: { message: /tessera\.io\/assignment/ } });
    const retenant = await post(
      hook.url,
      '/validate',
      update((p) => {
        p.metadata.labels['tessera.io/tenant'] = 'payments-ml';
      }),
      pem,
    );
    t.match(retenant.body.response, { allowed: false, status: { message: /does not match the namespace's tenant/ } });
  });
});
