// Tessera's node agent against a fake kubelet on unix sockets (device-plugin Registration, ListAndWatch, Allocate,
// PodResources) and a fake API server: registration and re-registration, the advertised devices and their health,
// Allocate in every delivery mode, concurrent equal requests, refusals, and the faults of docs/node-agent.md.

import t from 'tap';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually } from '../fixtures/fake-apiserver.ts';
import { NODE, nodeAgentRig, uuidOf } from '../fixtures/node-agent-rig.ts';

const get = async (url: string) => {
  const r = await fetch(url);
  return { status: r.status, text: await r.text() };
};

t.test('registers, advertises 1000 healthy devices per GPU, labels its node, is ready', async (t) => {
  const rig = await nodeAgentRig(4);
  t.teardown(() => rig.close());
  await rig.startAgent();
  await eventually('devices listed', () => rig.kubelet.devices.size === 4000);
  t.equal(rig.kubelet.healthy, 4000);
  t.same(rig.kubelet.registrations, ['tessera-gpu-milli.sock']);
  t.ok(
    [...rig.kubelet.devices.keys()].every((id) => /^GPU-[0-9a-f-]{36}::\d{1,3}$/.test(id)),
    'IDs name their GPU',
  );
  t.same(
    rig.agent.state().gpus.map((g) => g.uuid),
    [0, 1, 2, 3].map(uuidOf),
    'bus order is index order',
  );
  t.equal((await get(`${rig.agent.url}/readyz`)).status, 200);
  const labels = ((await (await fetch(`${rig.api.url}/api/v1/nodes/${NODE}`)).json()) as any).metadata.labels;
  t.match(labels, {
    'tessera.io/node-agent': 'serving',
    'tessera.io/gpu-enforcement': 'none',
    'tessera.io/gpu-delivery': 'envvar',
  });
  t.match((await get(`${rig.agent.url}/metrics`)).text, /tessera_agent_registered 1/);
});

t.test('Allocate in every delivery mode hands out exactly the assigned GPU', async (t) => {
  for (const mode of ['cdi-cri', 'envvar', 'volume-mounts'] as const) {
    const rig = await nodeAgentRig(4);
    await rig.startAgent({ delivery: mode });
    await eventually('registered', () => rig.kubelet.healthy === 4000);
    const p = rig.fractionPod('train', 250, [{ index: 2, milli: 250 }]);
    rig.api.put('pods', p);
    const r = await rig.kubelet.admit(p);
    t.equal(r.ok, true, `${mode}: admitted ${r.error ?? ''}`);
    const answer = r.responses.main!;
    const uuid = uuidOf(2);
    if (mode === 'cdi-cri') {
      t.same(answer.cdi_devices, [{ name: `nvidia.com/gpu=${uuid}` }]);
      t.equal(answer.envs.NVIDIA_VISIBLE_DEVICES, 'void');
    } else if (mode === 'envvar') {
      t.same(answer.envs, { NVIDIA_VISIBLE_DEVICES: uuid, TESSERA_GPU_DELIVERY: 'envvar' });
      t.same(answer.cdi_devices, []);
    } else {
      t.same(answer.envs, {
        NVIDIA_VISIBLE_DEVICES: '/var/run/nvidia-container-devices',
        TESSERA_GPU_DELIVERY: 'volume-mounts',
      });
      t.same(answer.mounts, [
        { container_path: `/var/run/nvidia-container-devices/${uuid}`, host_path: '/dev/null', read_only: true },
      ]);
    }
    t.ok(
      rig.kubelet.allocateCalls[0]!.every((id) => id.startsWith(`${uuid}::`)),
      `${mode}: the preferred allocation steered the kubelet to GPU 2's IDs`,
    );
    await eventually('event', () => rig.api.events.some((e) => e.body.reason === 'TesseraGpuAllocated'));
    await rig.close();
  }
});

t.test('auto mode: a CDI spec naming the GPUs by UUID means cdi-cri; the agent can write its own', async (t) => {
  const rig = await nodeAgentRig(2);
  t.teardown(() => rig.close());
  mkdirSync(join(rig.dir, 'cdi'), { recursive: true });
  writeFileSync(
    join(rig.dir, 'cdi', 'nvidia.yaml'),
    `cdiVersion: 0.6.0\nkind: nvidia.com/gpu\ndevices:\n${[0, 1].map((i) => `  - name: ${uuidOf(i)}\n    containerEdits: {deviceNodes: [{path: /dev/nvidia${i}}]}\n`).join('')}`,
  );
  await rig.startAgent();
  t.equal(rig.agent.state().delivery.mode, 'cdi-cri');
  await rig.agent.close();
  await rig.startAgent({
    cdiKind: 'tessera.io/gpu',
    writeCdiSpec: join(rig.dir, 'run-cdi', 'tessera.json'),
    cdiDirs: [join(rig.dir, 'run-cdi')],
  });
  t.equal(rig.agent.state().delivery.mode, 'cdi-cri', 'its own spec names every GPU');
  await eventually('registered', () => rig.kubelet.healthy === 2000);
  const p = rig.fractionPod('own', 500, [{ index: 1, milli: 500 }]);
  rig.api.put('pods', p);
  const r = await rig.kubelet.admit(p);
  t.same(r.responses.main?.cdi_devices, [{ name: `tessera.io/gpu=${uuidOf(1)}` }]);
});

t.test(
  "the pool's mode (the webhook's tessera.io/gpu-delivery) overrides the node's default; the flag overrides both",
  async (t) => {
    const rig = await nodeAgentRig(2);
    t.teardown(() => rig.close());
    await rig.startAgent();
    t.equal(rig.agent.state().delivery.mode, 'envvar', 'the node shows no CDI spec');
    await eventually('registered', () => rig.kubelet.healthy === 2000);
    const p = rig.fractionPod('pooled', 250, [{ index: 0, milli: 250 }], (x) => {
      x.metadata!.annotations!['tessera.io/gpu-delivery'] = 'volume-mounts';
    });
    rig.api.put('pods', p);
    t.equal((await rig.kubelet.admit(p)).responses.main?.envs.TESSERA_GPU_DELIVERY, 'volume-mounts');
    await rig.agent.close();
    await rig.startAgent({ delivery: 'cdi-cri' });
    await eventually('registered', () => rig.kubelet.healthy === 2000 && rig.agent.plugin.registered);
    const q = rig.fractionPod('flagged', 250, [{ index: 1, milli: 250 }], (x) => {
      x.metadata!.annotations!['tessera.io/gpu-delivery'] = 'volume-mounts';
    });
    rig.api.put('pods', q);
    t.equal((await rig.kubelet.admit(q)).responses.main?.envs.TESSERA_GPU_DELIVERY, 'cdi-cri');
  },
);

t.test('8 pods bound within a second, equal requests, different GPUs: each gets its own', async (t) => {
  const rig = await nodeAgentRig(8);
  t.teardown(() => rig.close());
  await rig.startAgent({ delivery: 'cdi-cri' });
  await eventually('registered', () => rig.kubelet.healthy === 8000);
  // Assigned in an order unrelated to the admission order.
  const pods = [5, 2, 7, 0, 3, 6, 1, 4].map((gpu, i) => rig.fractionPod(`eq-${i}`, 250, [{ index: gpu, milli: 250 }]));
  for (const p of pods) rig.api.put('pods', p);
  const results = await Promise.all(pods.map((p) => rig.kubelet.admit(p)));
  for (const [i, r] of results.entries()) {
    const want = JSON.parse(pods[i]!.metadata!.annotations!['tessera.io/assignment']!).gpus[0].index;
    t.same(r.responses.main?.cdi_devices, [{ name: `nvidia.com/gpu=${uuidOf(want)}` }], `eq-${i} sees GPU ${want}`);
  }
});

t.test('refusals: a pod without a valid assignment never gets a GPU, and is told why', async (t) => {
  const rig = await nodeAgentRig(4);
  t.teardown(() => rig.close());
  await rig.startAgent({ delivery: 'envvar' });
  await eventually('registered', () => rig.kubelet.healthy === 4000);
  const cases: [string, Parameters<typeof rig.fractionPod>[3], RegExp][] = [
    ['none', (p) => delete p.metadata!.annotations!['tessera.io/assignment'], /has no tessera.io\/assignment/],
    ['garbage', (p) => (p.metadata!.annotations!['tessera.io/assignment'] = 'GPU 0 please'), /not JSON/],
    [
      'other-node',
      (p) =>
        (p.metadata!.annotations!['tessera.io/assignment'] = JSON.stringify({
          node: 'elsewhere',
          gpus: [{ index: 0, milli: 250, memoryMiB: 1 }],
        })),
      /is for node elsewhere/,
    ],
    ['forged', (p) => delete p.metadata!.annotations!['tessera.io/policy-revision'], /not written by Tessera/],
    ['bypass', (p) => (p.spec!.schedulerName = 'default-scheduler'), /not written by Tessera/],
    [
      'wrong-size',
      (p) => (p.spec!.containers![0]!.resources!.limits!['tessera.io/gpu-milli'] = '300'),
      /reserves 250 .* requests 300/,
    ],
  ];
  for (const [name, edit, message] of cases) {
    const p = rig.fractionPod(`bad-${name}`, 250, [{ index: 0, milli: 250 }], edit);
    rig.api.put('pods', p);
    const r = await rig.kubelet.admit(p);
    t.equal(r.ok, false, `${name} refused`);
    t.match(r.error, message, name);
    t.match(r.error, /^Tessera's node agent on gpu-node-1: /);
  }
  await eventually(
    'warning events',
    () => rig.api.events.filter((e) => e.body.reason === 'TesseraGpuRefused').length === cases.length,
  );
  const overlap = rig.fractionPod('ok', 750, [{ index: 1, milli: 750 }]);
  rig.api.put('pods', overlap);
  t.equal((await rig.kubelet.admit(overlap)).ok, true);
  const forged = rig.fractionPod('overlap', 500, [{ index: 1, milli: 500 }]);
  rig.api.put('pods', forged);
  await eventually('cache', () => rig.agent.state().gpus.length === 4);
  const r = await rig.kubelet.admit(forged);
  t.match(r.error, /GPU 1 would hold 1250 milli/, 'an assignment overlapping live pods is refused');
});

t.test('faults: pod deleted before start, kubelet restart, agent restart, GPU gone', async (t) => {
  const rig = await nodeAgentRig(4);
  t.teardown(() => rig.close());
  await rig.startAgent({ delivery: 'cdi-cri' });
  await eventually('registered', () => rig.kubelet.healthy === 4000);

  // Deleted between bind and start: the kubelet still admits it, the API no longer has it.
  const gone = rig.fractionPod('gone', 250, [{ index: 0, milli: 250 }]);
  const r1 = await rig.kubelet.admit(gone);
  t.equal(r1.ok, false);
  t.match(r1.error, /no longer has: research-a\/gone/);

  const before = rig.fractionPod('before', 500, [{ index: 0, milli: 500 }]);
  rig.api.put('pods', before);
  t.equal((await rig.kubelet.admit(before)).ok, true);

  // Kubelet restart: the plugin directory is wiped; the agent serves and registers again.
  const calls = rig.kubelet.allocateCalls.length;
  await rig.kubelet.restart();
  await eventually('re-registered', () => rig.kubelet.registrations.length === 2 && rig.kubelet.healthy === 4000);
  t.equal(rig.agent.plugin.registrations, 2);
  t.equal(rig.kubelet.allocateCalls.length, calls, 'checkpointed allocations are not asked again');
  const after = rig.fractionPod('after', 500, [{ index: 0, milli: 500 }]);
  rig.api.put('pods', after);
  const r2 = await rig.kubelet.admit(after);
  t.same(r2.responses.main?.cdi_devices, [{ name: `nvidia.com/gpu=${uuidOf(0)}` }], 'a pod after the restart');

  // Agent down: the kubelet marks the devices Unhealthy (allocatable 0); pods wait, none is given a wrong GPU.
  await rig.agent.close();
  await eventually('devices unhealthy', () => rig.kubelet.healthy === 0);
  const waiting = rig.fractionPod('waiting', 250, [{ index: 3, milli: 250 }]);
  rig.api.put('pods', waiting);
  const r3 = await rig.kubelet.admit(waiting);
  t.equal(r3.ok, false, 'a pod the kubelet admits while the agent is down is not given any GPU');
  await rig.startAgent({ delivery: 'cdi-cri' });
  await eventually('back', () => rig.kubelet.healthy === 4000);
  const again = rig.fractionPod('again', 250, [{ index: 3, milli: 250 }]);
  rig.api.put('pods', again);
  t.same((await rig.kubelet.admit(again)).responses.main?.cdi_devices, [{ name: `nvidia.com/gpu=${uuidOf(3)}` }]);

  // A GPU that disappears: its devices turn Unhealthy, its pods are told, new pods on it are refused.
  rig.removeGpu(3);
  rig.agent.rescan();
  await eventually('GPU 3 unhealthy', () => rig.kubelet.healthy === 3000);
  t.ok([...rig.kubelet.devices].filter(([, h]) => h === 'Unhealthy').every(([id]) => id.startsWith(uuidOf(3))));
  await eventually('event on the pod of GPU 3', () =>
    rig.api.events.some((e) => e.body.reason === 'TesseraGpuUnhealthy' && e.body.involvedObject.name === 'again'),
  );
  const late = rig.fractionPod('late', 250, [{ index: 3, milli: 250 }]);
  rig.api.put('pods', late);
  const r4 = await rig.kubelet.admit(late);
  t.match(r4.error, /GPU 3 .* unhealthy or gone/);
});

t.test('enforcement: HAMi-core found on the node is reported and passed to containers', async (t) => {
  const rig = await nodeAgentRig(2);
  t.teardown(() => rig.close());
  mkdirSync(join(rig.dir, 'hami'), { recursive: true });
  writeFileSync(join(rig.dir, 'hami', 'libvgpu.so'), '');
  writeFileSync(join(rig.dir, 'hami', 'ld.so.preload'), '/usr/local/vgpu/libvgpu.so\n');
  await rig.startAgent({ delivery: 'cdi-cri' });
  await eventually('registered', () => rig.kubelet.healthy === 2000);
  const labels = ((await (await fetch(`${rig.api.url}/api/v1/nodes/${NODE}`)).json()) as any).metadata.labels;
  t.equal(labels['tessera.io/gpu-enforcement'], 'hami-core');
  const p = rig.fractionPod('limited', 250, [{ index: 0, milli: 250 }]);
  rig.api.put('pods', p);
  const r = await rig.kubelet.admit(p);
  t.match(r.responses.main?.envs, { CUDA_DEVICE_MEMORY_LIMIT_0: '20390m', CUDA_DEVICE_SM_LIMIT_0: '25' });
  t.match(r.responses.main?.mounts, [
    { container_path: '/usr/local/vgpu/libvgpu.so' },
    { container_path: '/etc/ld.so.preload' },
  ]);
});

t.test('a socket that cannot be served at start is retried, and never registered unserved', async (t) => {
  const rig = await nodeAgentRig(2);
  t.teardown(() => rig.close());
  // Something in the socket's place (a directory): binding fails until it is gone.
  const blocked = join(rig.kubelet.pluginDir, 'tessera-gpu-milli.sock');
  mkdirSync(join(blocked, 'in-the-way'), { recursive: true });
  await rig.startAgent({ delivery: 'cdi-cri' });
  await new Promise((r) => setTimeout(r, 500));
  t.same(rig.kubelet.registrations, [], 'not registered while its socket is not served');
  const ready = await get(`${rig.agent.url}/readyz`);
  t.equal(ready.status, 503);
  t.match(ready.text, /could not serve .*tessera-gpu-milli\.sock/, 'readiness says why');
  rmSync(blocked, { recursive: true, force: true });
  await eventually('served and registered', () => rig.kubelet.healthy === 2000);
  t.same(rig.kubelet.registrations, ['tessera-gpu-milli.sock']);
  t.equal((await get(`${rig.agent.url}/readyz`)).status, 200);
});
