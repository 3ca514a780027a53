// The mutation on a fraction pool served by Tessera's node agent (policy `delivery`), over HTTPS with real
// AdmissionReview payloads: GPU containers request tessera.io/gpu-milli (so the kubelet calls the agent's Allocate)
// and get no downward-API NVIDIA_VISIBLE_DEVICES; other containers keep `void`. Without `delivery` the downward API
// stays.

import t, { type Test } from 'tap';
import jsonPatch from 'fast-json-patch';
import { webhookOverHttps } from '../fixtures/webhook-over-https.ts';
import { pod } from '../fixtures/pods.ts';
import { BOB, EXAMPLE_POLICY_TEXT, view } from '../fixtures/admission.ts';
import { postJson } from '../fixtures/https-json.ts';

const AGENT_POLICY = EXAMPLE_POLICY_TEXT.replace(
  '      fractionMode: fraction\n',
  '      fractionMode: fraction\n      delivery: { mode: cdi-cri }\n',
);

async function webhookWith(t: Test, policyText: string) {
  const { hook, caPem } = await webhookOverHttps(t, { policyText, view: view() });
  return {
    async mutate(p: any) {
      const r = await postJson(
        hook.url,
        '/mutate',
        {
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          request: {
            uid: 'e7a1f0b2-0000-4000-8000-0000000000a9',
            kind: { group: '', version: 'v1', kind: 'Pod' },
            resource: { group: '', version: 'v1', resource: 'pods' },
            namespace: p.metadata.namespace,
            operation: 'CREATE',
            userInfo: BOB,
            object: p,
          },
        },
        caPem,
      );
      if (r.status !== 200 || !r.body.response.allowed) throw new Error(`mutate failed: ${JSON.stringify(r.body)}`);
      const ops = JSON.parse(Buffer.from(r.body.response.patch ?? 'W10=', 'base64').toString());
      return jsonPatch.applyPatch(structuredClone(p), ops, true, false).newDocument as any;
    },
  };
}

const twoContainers = () =>
  pod('train')
    .ns('research-a')
    .annotate('tessera.io/gpu-fraction', '0.25')
    .container({ name: 'sidecar', image: 'registry.example/log:1' })
    .build();

const envOf = (c: any, name: string) => (c.env ?? []).find((e: any) => e.name === name);

t.test('agent pool: gpu-milli as a container resource, no downward API, void elsewhere', async (t) => {
  const hook = await webhookWith(t, AGENT_POLICY);
  const patched = await hook.mutate(twoContainers());
  const [main, sidecar] = patched.spec.containers;
  t.same(main.resources.limits, { 'tessera.io/gpu-milli': '250' }, 'the kubelet will ask the agent for 250 devices');
  t.equal(envOf(main, 'NVIDIA_VISIBLE_DEVICES'), undefined, 'the agent, not the downward API, delivers the GPU');
  t.same(envOf(sidecar, 'NVIDIA_VISIBLE_DEVICES'), { name: 'NVIDIA_VISIBLE_DEVICES', value: 'void' });
  t.equal(patched.spec.schedulerName, 'tessera-scheduler');
  t.equal(patched.metadata.annotations['tessera.io/gpu-delivery'], 'cdi-cri', "the pool's mode, for the agent");
});

t.test('pool without delivery: the downward API wiring stays', async (t) => {
  const hook = await webhookWith(t, EXAMPLE_POLICY_TEXT);
  const patched = await hook.mutate(twoContainers());
  const [main, sidecar] = patched.spec.containers;
  t.same(main.resources.limits, { 'tessera.io/gpu-milli': '250' });
  t.same(envOf(main, 'NVIDIA_VISIBLE_DEVICES'), {
    name: 'NVIDIA_VISIBLE_DEVICES',
    valueFrom: { fieldRef: { fieldPath: "metadata.annotations['tessera.io/visible-devices']" } },
  });
  t.same(envOf(sidecar, 'NVIDIA_VISIBLE_DEVICES'), { name: 'NVIDIA_VISIBLE_DEVICES', value: 'void' });
  t.equal(patched.metadata.annotations['tessera.io/gpu-delivery'], undefined);
});
