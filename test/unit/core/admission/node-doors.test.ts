import t from 'tap';
import { auditPods } from '../../../../core/admission/audit.ts';
import { validateRequest } from '../../../../core/admission/validation.ts';
import {
  cleanMountPath,
  DEVICE_LIST_ROOT,
  INJECTION_DOMAINS,
  isDeviceListMount,
} from '../../../../core/admission/rules/node-doors.ts';
import type { KubeContainer, KubePod } from '../../../../core/kube-objects.ts';
import { pod } from '../../../fixtures/pods.ts';
import {
  admit,
  BOB,
  CONFIG,
  EXAMPLE_POLICY_TEXT,
  examplePolicy,
  EXTENDER,
  podRequest,
  view,
} from '../../../fixtures/admission.ts';

const policy = examplePolicy();
const good = (name: string, namespace = 'research-a') =>
  pod(name).ns(namespace).label('team', 'vision').label('cost-center', '1234');
const fraction = (name: string, namespace = 'research-a') =>
  good(name, namespace).annotate('tessera.io/gpu-fraction', '0.5');

/** The NVIDIA kind demo's way to every GPU: the host's /dev/null mounted at a device-list path. */
function withDeviceListMount(p: KubePod, mountPath: string, where: 'main' | 'init' | 'sidecar' = 'main'): KubePod {
  p.spec!.volumes = [...(p.spec!.volumes ?? []), { name: 'gpus', hostPath: { path: '/dev/null' } }];
  const mount = { name: 'gpus', mountPath };
  if (where === 'main') {
    const main = p.spec!.containers![0]!;
    main.volumeMounts = [...(main.volumeMounts ?? []), mount];
  } else {
    const c: KubeContainer = { name: where === 'init' ? 'warm' : 'proxy', image: 'registry.example/x:1' };
    if (where === 'sidecar') c.restartPolicy = 'Always';
    c.volumeMounts = [mount];
    (p.spec!.initContainers ??= []).push(c);
  }
  return p;
}

const accounting = (violations: readonly { rule: string; action: string; message: string }[]) =>
  violations.filter((v) => v.rule === 'tessera/accounting' && v.action === 'enforce').map((v) => v.message);

t.test('mount paths are cleaned as the kubelet and the NVIDIA toolkit see them', async (t) => {
  t.equal(cleanMountPath('/var/run/nvidia-container-devices/'), DEVICE_LIST_ROOT);
  t.equal(cleanMountPath('/var/run/../run/nvidia-container-devices/all'), `${DEVICE_LIST_ROOT}/all`);
  t.equal(
    cleanMountPath('/var/run/../var/run/nvidia-container-devices/all'),
    '/var/var/run/nvidia-container-devices/all',
    '/var/run/.. is /var',
  );
  t.equal(cleanMountPath('//var//run/./nvidia-container-devices//0'), `${DEVICE_LIST_ROOT}/0`);
  t.equal(
    cleanMountPath('var/run/nvidia-container-devices/all'),
    `${DEVICE_LIST_ROOT}/all`,
    'relative: kubelet adds /',
  );
  t.equal(cleanMountPath('/../../var/run/nvidia-container-devices'), DEVICE_LIST_ROOT, '.. stops at /');
  t.equal(cleanMountPath(''), '/');
  for (const door of [
    '/var/run/nvidia-container-devices',
    '/var/run/nvidia-container-devices/',
    '/var/run/nvidia-container-devices/all',
    '/var/run/nvidia-container-devices/GPU-0f2e4f5a-1111-2222-3333-444455556666',
    '/var/run/nvidia-container-devices/cdi/nvidia.com/gpu/all',
    '/var/run/nvidia-container-devices/imex/0',
    '/var/run/nvidia-container-devices0',
    '/var/run/../run/nvidia-container-devices/all',
    '/var/../var/run/nvidia-container-devices/all',
    'var/run/nvidia-container-devices/all',
    '/run/nvidia-container-devices/all',
    '/run/./nvidia-container-devices',
  ]) {
    t.ok(isDeviceListMount(door), `${door} is a device-list mount`);
  }
  for (const harmless of [
    '/var/run',
    '/var/run/nvidia',
    '/var/run/nvidia-container-device',
    '/data/var/run/nvidia-container-devices/all',
    '/var/run/../var/run/nvidia-container-devices/all',
    '/var/run/secrets/kubernetes.io/serviceaccount',
    '/run/nvidia',
  ]) {
    t.notOk(isDeviceListMount(harmless), `${harmless} is not`);
  }
});

t.test('a device-list mount is denied in every container kind, with what to remove and why', async (t) => {
  for (const where of ['main', 'init', 'sidecar'] as const) {
    const name = where === 'main' ? 'main' : where === 'init' ? 'warm' : 'proxy';
    const a = admit(
      withDeviceListMount(good(`m-${where}`).build(), '/var/run/nvidia-container-devices/all', where),
      policy,
    );
    t.match(
      a.denial,
      new RegExp(
        `\\[tessera/accounting\\] container ${name} mounts volume gpus at /var/run/nvidia-container-devices/all, under /var/run/nvidia-container-devices; the NVIDIA container runtime reads mounts there as a list of GPUs to expose, behind Tessera's back. Remove the mount and ask for GPUs with tessera.io/gpu-fraction`,
      ),
      `${where} container`,
    );
  }
  const gpuPod = admit(withDeviceListMount(fraction('f').build(), '/var/run/nvidia-container-devices/all'), policy);
  t.match(gpuPod.denial, /container main mounts volume gpus/, 'in GPU pods too');
  const emptyDir = good('e').build();
  emptyDir.spec!.volumes = [{ name: 'scratch', emptyDir: {} }];
  emptyDir.spec!.containers![0]!.volumeMounts = [
    { name: 'scratch', mountPath: '/var/run/nvidia-container-devices/all' },
  ];
  t.match(admit(emptyDir, policy).denial, /container main mounts volume scratch/, 'whatever the volume type');
  const sneaky = admit(withDeviceListMount(good('s').build(), '/var/run/../run/nvidia-container-devices/all'), policy);
  t.match(
    sneaky.denial,
    /at \/var\/run\/\.\.\/run\/nvidia-container-devices\/all \(\/var\/run\/nvidia-container-devices\/all\)/,
    'the cleaned path is shown beside the one written',
  );
  const viaRun = admit(withDeviceListMount(good('r').build(), '/run/nvidia-container-devices/all'), policy);
  t.match(
    viaRun.denial,
    /under \/run\/nvidia-container-devices, which is \/var\/run\/nvidia-container-devices in most images/,
  );
  const harmless = good('h').build();
  harmless.spec!.volumes = [{ name: 'cache', emptyDir: {} }];
  harmless.spec!.containers![0]!.volumeMounts = [{ name: 'cache', mountPath: '/var/run/cache' }];
  t.equal(admit(harmless, policy).denial, null, 'other mounts pass');
});

t.test('ephemeral containers are checked when they are added', async (t) => {
  const running = admit(fraction('dbg').build(), policy).pod;
  const withDebug = structuredClone(running);
  withDebug.spec!.ephemeralContainers = [
    {
      name: 'debug',
      image: 'registry.example/busybox',
      volumeMounts: [{ name: 'gpus', mountPath: '/var/run/nvidia-container-devices/all' }],
    },
  ];
  const v = validateRequest(
    podRequest(withDebug, { operation: 'UPDATE', old: running, subResource: 'ephemeralcontainers' }),
    policy,
    view(),
    CONFIG,
  );
  t.notOk(v.allowed);
  t.match(accounting(v.violations), [
    /^container debug mounts volume gpus at \/var\/run\/nvidia-container-devices\/all/,
  ]);
});

t.test('device-injection annotations are denied, every key form of every reader', async (t) => {
  for (const { domain } of INJECTION_DOMAINS) {
    for (const key of [domain, `${domain}/pod`, `${domain}/container.main`]) {
      const a = admit(good('a').annotate(key, 'nvidia.com/gpu=all').build(), policy);
      t.match(
        a.denial,
        new RegExp(
          `\\[tessera/accounting\\] annotation ${key.replaceAll('.', '\\.')} asks .* to (inject devices|add mounts)`,
        ),
        key,
      );
    }
  }
  const cdi = admit(fraction('c').annotate('cdi.k8s.io/grab', 'nvidia.com/gpu=all').build(), policy);
  t.match(
    cdi.denial,
    /annotation cdi\.k8s\.io\/grab asks a CDI-aware container runtime to inject devices into the pod's containers, which can hand it any GPU of the node behind Tessera's back\. Remove the annotation and ask for GPUs with tessera\.io\/gpu-fraction, tessera\.io\/gpu-count or nvidia\.com\/gpu instead/,
  );
  const mounts = admit(good('m').annotate('mounts.noderesource.dev/pod', '- source: /dev/null').build(), policy);
  t.match(mounts.denial, /asks the NRI device injector to add mounts to the pod's containers/);
  for (const harmless of [
    'example.com/cdi.k8s.io',
    'cdi.k8s.io.example.com/x',
    'notdevices.nri.io/pod',
    'nri.io/pod',
    'noderesource.dev/pod',
    'io-priority.noderesource.dev/pod',
  ]) {
    t.equal(admit(good('ok').annotate(harmless, 'x').build(), policy).denial, null, `${harmless} passes`);
  }
});

t.test('scoped like NVIDIA_VISIBLE_DEVICES: every pod the webhook sees, whatever the policy', async (t) => {
  const plain = admit(
    withDeviceListMount(pod('p').ns('plain').build(), '/var/run/nvidia-container-devices/all'),
    policy,
  );
  t.match(plain.denial, /\[tessera\/accounting\] container main mounts volume gpus/, 'a namespace without a tenant');
  t.match(
    admit(pod('q').ns('plain').annotate('devices.nri.io', '- path: /dev/nvidia0').build(), policy).denial,
    /annotation devices\.nri\.io asks the NRI device injector/,
  );
  const relaxed = examplePolicy(
    EXAMPLE_POLICY_TEXT.replace(/kind: GpuBypass\n {6}action: enforce/, 'kind: GpuBypass\n      action: audit'),
  );
  t.match(
    admit(withDeviceListMount(good('r').build(), '/var/run/nvidia-container-devices/0'), relaxed).denial,
    /\[tessera\/accounting\]/,
    'a relaxed GpuBypass rule does not open them',
  );
  const extender = validateRequest(
    podRequest(withDeviceListMount(good('x').build(), '/var/run/nvidia-container-devices/all'), { user: EXTENDER }),
    policy,
    view(),
    CONFIG,
  );
  t.notOk(extender.allowed, "not even Tessera's own service accounts");
});

t.test('workload templates are denied at their own admission', async (t) => {
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
  const mounted = withDeviceListMount(good('t').build(), '/var/run/nvidia-container-devices/all', 'sidecar');
  const annotated = good('u').annotate('cdi-devices.nri.io/container.main', 'nvidia.com/gpu=all').build();
  for (const kind of ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob']) {
    const m = validateRequest(template(kind, mounted), policy, view(), CONFIG);
    t.notOk(m.allowed, `${kind}: mount denied`);
    t.match(accounting(m.violations), [new RegExp(`^${kind} spec.*template: container proxy mounts volume gpus`)]);
    const a = validateRequest(template(kind, annotated), policy, view(), CONFIG);
    t.notOk(a.allowed, `${kind}: annotation denied`);
    t.match(accounting(a.violations), [
      new RegExp(
        `^${kind} spec.*template: annotation cdi-devices\\.nri\\.io/container\\.main asks the NRI device injector`,
      ),
    ]);
  }
});

t.test('UPDATE: adding an injection annotation to a running pod is denied; drift alone blocks nothing', async (t) => {
  const running = admit(fraction('live').build(), policy).pod;
  running.spec!.nodeName = 'h100-0';
  const annotated = structuredClone(running);
  annotated.metadata!.annotations!['devices.noderesource.dev/container.main'] = '- path: /dev/nvidia1';
  const v = validateRequest(podRequest(annotated, { operation: 'UPDATE', old: running }), policy, view(), CONFIG);
  t.notOk(v.allowed, 'the injector would apply it at the next container restart');
  t.match(accounting(v.violations), [/annotation devices\.noderesource\.dev\/container\.main/]);
  const relabelled = structuredClone(annotated);
  relabelled.metadata!.labels!['app'] = 'x';
  t.ok(
    validateRequest(podRequest(relabelled, { operation: 'UPDATE', old: annotated }), policy, view(), CONFIG).allowed,
    'a pod admitted before the check can still be relabelled; the audit reports it',
  );
});

t.test('the audit reports running pods that have a door open', async (t) => {
  const bound = (p: KubePod, node: string): KubePod => {
    p.spec!.nodeName = node;
    p.status = { phase: 'Running' };
    return p;
  };
  const clean = bound(admit(fraction('clean').build(), policy).pod, 'h100-0');
  const mounted = bound(
    withDeviceListMount(admit(good('mounted').build(), policy).pod, '/var/run/nvidia-container-devices/all'),
    'h100-0',
  );
  const annotated = admit(good('annotated').build(), policy).pod;
  annotated.metadata!.annotations!['cdi.k8s.io/x'] = 'nvidia.com/gpu=all';
  bound(annotated, 'h100-1');
  const elsewhere = bound(
    withDeviceListMount(pod('elsewhere').ns('plain').build(), 'var/run/nvidia-container-devices/0'),
    'cpu-0',
  );
  const report = auditPods([clean, mounted, annotated, elsewhere], policy, view());
  t.same(
    report.drifted.filter((d) => accounting(d.violations).length > 0).map((d) => `${d.namespace}/${d.name}`),
    ['plain/elsewhere', 'research-a/annotated', 'research-a/mounted'],
    'the clean pod is not among them (it is reported only for the audit-only runtime class rule)',
  );
  const byName = new Map(report.drifted.map((d) => [d.name, accounting(d.violations)]));
  t.match(byName.get('mounted'), [/container main mounts volume gpus at \/var\/run\/nvidia-container-devices\/all/]);
  t.match(byName.get('annotated'), [/annotation cdi\.k8s\.io\/x asks a CDI-aware container runtime/]);
  t.match(byName.get('elsewhere'), [
    /at var\/run\/nvidia-container-devices\/0 \(\/var\/run\/nvidia-container-devices\/0\)/,
  ]);
  t.match(
    report.byRule.filter((r) => r.rule === 'tessera/accounting'),
    [
      { action: 'enforce', tenant: '-', pods: 1 },
      { action: 'enforce', tenant: 'research', pods: 2 },
    ],
  );
});
