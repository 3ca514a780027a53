// The webhook over HTTPS with KubeVirt payloads, as kube-apiserver sends them: AdmissionReviews of a
// VirtualMachineInstance and a VirtualMachine (kubevirt.io/v1, from `kubectl apply` by a user), and of the
// virt-launcher pod KubeVirt's controller creates (test/fixtures/kubevirt.ts follows virt-controller's rendering).

import t from 'tap';
import { readFileSync } from 'node:fs';
import jsonPatch from 'fast-json-patch';
import { pino } from 'pino';
import { staticClusterView } from '../../core/admission/cluster-view.ts';
import { webhookOverHttps } from '../fixtures/webhook-over-https.ts';
import { postJson as post } from '../fixtures/https-json.ts';
import { BOB, NAMESPACES } from '../fixtures/admission.ts';
import { KUBEVIRT_CONTROLLER, launcherPod, vm, vmi } from '../fixtures/kubevirt.ts';

const log = pino({ level: 'silent' });
const VM_POLICY_TEXT = readFileSync(new URL('../../../shared/examples/vm/policy.yaml', import.meta.url), 'utf8');
const H100 = 'nvidia.com/GH100_H100_SXM5_80GB';

let uid = 0;
/** An AdmissionReview as kube-apiserver v1.37 sends it for a CREATE (requestKind/requestResource, CreateOptions). */
function review(object: any, user = BOB, operation: 'CREATE' | 'UPDATE' = 'CREATE') {
  const kubevirt = object.apiVersion === 'kubevirt.io/v1';
  const group = kubevirt ? 'kubevirt.io' : '';
  const kind = { group, version: 'v1', kind: object.kind };
  const resource = {
    group,
    version: 'v1',
    resource: kubevirt ? (object.kind === 'VirtualMachine' ? 'virtualmachines' : 'virtualmachineinstances') : 'pods',
  };
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `vm-${++uid}`,
      kind,
      resource,
      requestKind: kind,
      requestResource: resource,
      name: object.metadata?.name ?? '',
      namespace: object.metadata?.namespace ?? '',
      operation,
      userInfo: user,
      object,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'kubectl-client-side-apply' },
    },
  };
}

function patched(object: any, response: { patch?: string }): any {
  if (!response.patch) return object;
  const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString());
  return jsonPatch.applyPatch(structuredClone(object), ops, true, false).newDocument;
}

t.test('the webhook over HTTPS with KubeVirt objects', async (t) => {
  const { hook, caPem } = await webhookOverHttps(t, {
    policyText: VM_POLICY_TEXT,
    view: staticClusterView(NAMESPACES, []),
    log: log,
  });
  const pem = caPem;
  const admit = async (object: any, user = BOB) => {
    const m = await post(hook.url, '/mutate', review(object, user), pem);
    t.equal(m.status, 200);
    if (!m.body.response.allowed) return { mutated: object, response: m.body.response };
    const mutated = patched(object, m.body.response);
    const v = await post(hook.url, '/validate', review(mutated, user), pem);
    t.equal(v.status, 200);
    return { mutated, response: v.body.response };
  };

  await t.test('a VMI with a gpu-fraction gets a vGPU profile, and its launcher pod is pinned', async (t) => {
    const object = vmi({ name: 'desk', annotations: { 'tessera.io/gpu-fraction': '0.25' } });
    const { mutated, response } = await admit(object);
    t.match(response, { allowed: true });
    t.same(mutated.spec.domain.devices.gpus, [{ name: 'tessera-vgpu', deviceName: 'nvidia.com/NVIDIA_L40S-12Q' }]);
    t.equal(mutated.metadata.annotations['tessera.io/pool'], 'vm-l40s-vgpu');
    // virt-controller renders the launcher pod from the mutated VMI and creates it as its own service account.
    const pod = launcherPod({
      vmName: 'desk',
      devices: { 'nvidia.com/NVIDIA_L40S-12Q': 1 },
      annotations: { 'tessera.io/gpu-fraction': '0.25', 'tessera.io/pool': 'vm-l40s-vgpu' },
    });
    const launched = await admit(pod, KUBEVIRT_CONTROLLER);
    t.match(launched.response, { allowed: true });
    t.equal(launched.mutated.spec.schedulerName, 'tessera-scheduler');
    t.match(launched.mutated.spec.tolerations, [{ key: 'tessera.io/pool', value: 'vm-l40s-vgpu' }]);
    t.equal(launched.mutated.spec.containers[0].resources.limits['nvidia.com/NVIDIA_L40S-12Q'], '1');
    t.equal(launched.mutated.spec.containers[0].resources.limits['tessera.io/devices'], '1');
  });

  await t.test('denials at the VMI and VM admission say what is wrong and how to fix it', async (t) => {
    const nine = await admit(vmi({ gpus: Array.from({ length: 9 }, (_, i) => ({ name: `g${i}`, deviceName: H100 })) }));
    t.match(nine.response, {
      allowed: false,
      status: { code: 403, message: /tenant research allows at most 8 per pod\. Split the work or ask for fewer GPUs/ },
    });
    const amd = await admit(vm({ hostDevices: [{ name: 'mi300', deviceName: 'amd.com/gpu' }] }));
    t.match(
      amd.response.status.message,
      /\[tessera\/accelerators\] VirtualMachine gpu-vm spec\.template: amd\.com\/gpu/,
    );
    t.match(amd.response.status.message, /Ask a platform admin to add \{ resource: amd\.com\/gpu/);
    const huge = await admit(vmi({ annotations: { 'tessera.io/gpu-fraction': '0.9' } }));
    t.match(huge.response, { allowed: false, status: { message: /no vGPU profile of tenant research's vgpu pools/ } });
  });

  await t.test('virt-launcher pods: the holes of issue 18 are closed over the wire', async (t) => {
    const twenty = await admit(launcherPod({ devices: { [H100]: 20 } }), KUBEVIRT_CONTROLLER);
    t.match(twenty.response.status.message, /at most 8 per pod/);
    const untenanted = await admit(launcherPod({ namespace: 'plain', devices: { [H100]: 4 } }), KUBEVIRT_CONTROLLER);
    t.match(untenanted.response.status.message, /namespace plain has no tessera\.io\/tenant label/);
    const t4 = await admit(launcherPod({ devices: { 'nvidia.com/GRID_T4-1Q': 30 } }), KUBEVIRT_CONTROLLER);
    t.match(t4.response, { allowed: false, status: { message: /nvidia\.com\/GRID_T4-1Q is an accelerator resource/ } });
    const ok = await admit(launcherPod({ devices: { [H100]: 2 } }), KUBEVIRT_CONTROLLER);
    t.match(ok.response, { allowed: true });
  });

  await t.test('malformed KubeVirt objects never crash the server', async (t) => {
    for (const spec of [
      'x',
      null,
      { domain: 'x' },
      { domain: { devices: { gpus: 'x' } } },
      { domain: { devices: { gpus: [null, 5, { deviceName: 7 }] } } },
    ]) {
      const object = {
        apiVersion: 'kubevirt.io/v1',
        kind: 'VirtualMachineInstance',
        // With a fraction, so that the mutation would write into whatever spec holds.
        metadata: { name: 'bad', namespace: 'research-a', annotations: { 'tessera.io/gpu-fraction': '0.25' } },
        spec,
      };
      for (const path of ['/mutate', '/validate']) {
        const r = await post(hook.url, path, review(object), pem);
        t.equal(r.status, 200, `${path} ${JSON.stringify(spec)}`);
        t.equal(typeof r.body.response.allowed, 'boolean');
        t.notMatch(r.body.response.status?.message ?? '', /internal error/, 'judged, not crashed on');
      }
    }
  });
});
