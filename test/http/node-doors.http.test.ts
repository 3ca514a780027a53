import t from 'tap';
import type { KubePod } from '../../core/kube-objects.ts';
import { INJECTION_DOMAINS } from '../../core/admission/rules/node-doors.ts';
import { webhookOverHttps } from '../fixtures/webhook-over-https.ts';
import { postJson as post } from '../fixtures/https-json.ts';
import { BOB, EXAMPLE_POLICY_TEXT, view } from '../fixtures/admission.ts';
import { pod } from '../fixtures/pods.ts';

// The node-side GPU doors over HTTPS with real AdmissionReview payloads: each one is denied with a 403 that names it.

let uid = 0;
const review = (request: object) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: { uid: `door-${++uid}`, userInfo: BOB, operation: 'CREATE', ...request },
});
const podReview = (p: KubePod, extra: object = {}) =>
  review({
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: p.metadata!.namespace,
    name: p.metadata!.name,
    object: p,
    ...extra,
  });

const tenantPod = (name: string) =>
  pod(name)
    .ns('research-a')
    .label('team', 'vision')
    .label('cost-center', '1234')
    .annotate('tessera.io/gpu-fraction', '0.5');

function mounted(p: KubePod, mountPath: string, into: 'containers' | 'initContainers' = 'containers', sidecar = false) {
  p.spec!.volumes = [{ name: 'gpus', hostPath: { path: '/dev/null' } }];
  const mount = { name: 'gpus', mountPath };
  if (into === 'containers') p.spec!.containers![0]!.volumeMounts = [mount];
  else
    p.spec!.initContainers = [
      {
        name: 'side',
        image: 'registry.example/x:1',
        volumeMounts: [mount],
        ...(sidecar ? { restartPolicy: 'Always' } : {}),
      },
    ];
  return p;
}

t.test('the node-side GPU doors are denied over HTTPS', async (t) => {
  const { hook, caPem } = await webhookOverHttps(t, { policyText: EXAMPLE_POLICY_TEXT, view: view() });
  const validate = (body: object) => post(hook.url, '/validate', body, caPem);
  const denied = async (body: object, message: RegExp, what: string) => {
    const r = await validate(body);
    t.equal(r.status, 200, `${what}: an AdmissionReview answer`);
    t.match(
      r.body.response,
      { allowed: false, status: { code: 403, reason: 'Forbidden', message } },
      `${what}: denied with its message`,
    );
  };

  await t.test('device-list volume mounts, in every container kind and path variant', async () => {
    for (const path of [
      '/var/run/nvidia-container-devices/all',
      '/var/run/nvidia-container-devices/',
      '/var/run/../run/nvidia-container-devices/0',
      'var/run/nvidia-container-devices/all',
      '/run/nvidia-container-devices/all',
    ]) {
      await denied(
        podReview(mounted(tenantPod('m').build(), path)),
        /\[tessera\/accounting\] container main mounts volume gpus at .*the NVIDIA container runtime reads mounts there as a list of GPUs/,
        `mount at ${path}`,
      );
    }
    await denied(
      podReview(mounted(tenantPod('i').build(), '/var/run/nvidia-container-devices/all', 'initContainers')),
      /container side mounts volume gpus/,
      'init container',
    );
    await denied(
      podReview(mounted(tenantPod('s').build(), '/var/run/nvidia-container-devices/all', 'initContainers', true)),
      /container side mounts volume gpus/,
      'sidecar',
    );
    const running = tenantPod('e').build();
    const withDebug = structuredClone(running);
    withDebug.spec!.ephemeralContainers = [
      {
        name: 'debug',
        image: 'registry.example/busybox',
        volumeMounts: [{ name: 'gpus', mountPath: '/var/run/nvidia-container-devices/all' }],
      },
    ];
    await denied(
      podReview(withDebug, { operation: 'UPDATE', oldObject: running, subResource: 'ephemeralcontainers' }),
      /container debug mounts volume gpus/,
      'ephemeral container',
    );
  });

  await t.test('device-injection annotations of every reader', async () => {
    for (const { domain } of INJECTION_DOMAINS) {
      const key = `${domain}/container.main`;
      await denied(
        podReview(tenantPod('a').annotate(key, 'nvidia.com/gpu=all').build()),
        new RegExp(`\\[tessera/accounting\\] annotation ${key.replaceAll('.', '\\.')} asks .*Remove the annotation`),
        key,
      );
    }
    await denied(
      podReview(pod('plain').ns('plain').annotate('devices.nri.io', '- path: /dev/nvidia0').build()),
      /annotation devices\.nri\.io asks the NRI device injector/,
      'a namespace without a tenant, the bare key',
    );
  });

  await t.test('workload templates', async () => {
    const tpl = mounted(
      tenantPod('d').annotate('cdi.k8s.io/x', 'nvidia.com/gpu=all').build(),
      '/var/run/nvidia-container-devices/all',
    );
    await denied(
      review({
        kind: { group: 'apps', version: 'v1', kind: 'Deployment' },
        resource: { group: 'apps', version: 'v1', resource: 'deployments' },
        namespace: 'research-a',
        name: 'd',
        object: {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          spec: { template: { metadata: tpl.metadata, spec: tpl.spec } },
        },
      }),
      /\(2 problems\):\n- \[tessera\/accounting\] Deployment spec\.template: container main mounts volume gpus[\s\S]*\n- \[tessera\/accounting\] Deployment spec\.template: annotation cdi\.k8s\.io\/x asks/,
      'Deployment',
    );
    await denied(
      review({
        kind: { group: 'batch', version: 'v1', kind: 'CronJob' },
        resource: { group: 'batch', version: 'v1', resource: 'cronjobs' },
        namespace: 'research-a',
        name: 'c',
        object: {
          apiVersion: 'batch/v1',
          kind: 'CronJob',
          spec: { jobTemplate: { spec: { template: { metadata: tpl.metadata, spec: tpl.spec } } } },
        },
      }),
      /CronJob spec\.jobTemplate\.spec\.template: container main mounts volume gpus/,
      'CronJob',
    );
  });

  await t.test('mutate leaves the verdict to validate; a clean pod passes both', async (t) => {
    const door = mounted(tenantPod('v').build(), '/var/run/nvidia-container-devices/all');
    const m = await post(hook.url, '/mutate', podReview(door), caPem);
    t.equal(m.body.response.allowed, true, 'mutation does not judge the doors');
    const clean = pod('ok').ns('research-a').label('team', 'vision').label('cost-center', '1234').build();
    clean.spec!.volumes = [{ name: 'cache', emptyDir: {} }];
    clean.spec!.containers![0]!.volumeMounts = [{ name: 'cache', mountPath: '/var/run/cache' }];
    t.equal((await validate(podReview(clean))).body.response.allowed, true, 'other mounts pass');
  });
});
