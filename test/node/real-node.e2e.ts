// Tessera installed on a real node as a user would install it (npm run test:node): the image `npm run image` builds,
// imported into the node's containerd, the Helm chart installed (charts/tessera, certificates by its own hook Job;
// TESSERA_NODE_INSTALL=kustomize applies the kustomize base through manifests/overlays/local-image instead), and the
// e2e suite's admission and scheduling checks run against the installed pods: the API server calls the webhook
// through its Service (kube-proxy), tessera-scheduler (the stock kube-scheduler in a pod) calls the extender through
// its Service by its DNS name, and the extender binds pods on KWOK's GPU nodes under the shipped RBAC.

import t, { type Test } from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import {
  CoreV1Api,
  DiscoveryV1Api,
  type KubeConfig,
  RbacAuthorizationV1Api,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';
import { createFakeNode } from '../e2e/stack.ts';
import {
  checkBurst,
  checkConcurrentBinds,
  checkNoNvidiaRuntime,
  type DeliveryResult,
  deleteBurst,
  FractionReport,
  labelFractionNode,
  prepareTenants,
  runBurst,
  setPoolDelivery,
  shippedAgentRole,
  summarize,
} from './fraction-delivery.ts';
import { histogram, type NodeAgent, startNodeAgent } from './agent-process.ts';
import { type Delivery, percentile } from './fractions.ts';
import { describeGap, startServiceProbe, streamGpuPods, watchTakeover } from './handoff.ts';
import { NODE_NAME, type NodeStack, startNodeStack } from './harness.ts';
import { helm, helmAsync, helmValues, previousChart } from './install.ts';
import { CHART } from '../helm/render.ts';
import { type Probe, until as waitUntil, apiErrorMessage as message } from '../fixtures/waiting.ts';

/** This suite's waits are longer than the default: a real node (or DRA's controllers) on a busy machine. */
const until = <T>(what: string, probe: Probe<T>, timeoutMs = 90_000) => waitUntil(what, probe, timeoutMs);

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The serial number of the certificate a pod serves on 8443 (as X509Certificate spells it). */
function servedSerial(ip: string): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect({ host: ip, port: 8443, rejectUnauthorized: false, timeout: 3000 }, () => {
      const serial = socket.getPeerX509Certificate()?.serialNumber ?? null;
      socket.destroy();
      resolve(serial);
    });
    socket.once('error', () => resolve(null));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(null);
    });
  });
}

function api(kc: KubeConfig): CoreV1Api {
  return kc.makeApiClient(CoreV1Api);
}

const ready = (p: V1Pod): boolean =>
  p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
const app = (p: V1Pod): string => p.metadata?.labels?.['app.kubernetes.io/name'] ?? '';
/** The extender pod that leads: Ready, and labelled for the Service (extender/role-label.ts). */
const leads = (p: V1Pod): boolean =>
  app(p) === 'tessera-extender' && ready(p) && p.metadata?.labels?.['tessera.io/extender-role'] === 'leader';

const fractionNode = (name: string) => ({
  metadata: {
    name,
    labels: {
      'tessera.io/pool': 'shared-h100',
      'tessera.io/sharing': 'fraction',
      'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3',
      'nvidia.com/gpu.count': '8',
      'nvidia.com/gpu.memory': '81559',
      'nvidia.com/gpu.sharing-strategy': 'none',
    },
  },
  spec: { taints: [{ key: 'tessera.io/pool', value: 'shared-h100', effect: 'NoSchedule' }] },
});

const gpuPod = (name: string, namespace: string, annotations: Record<string, string>) => ({
  metadata: { name, namespace, labels: { team: 'vision', 'cost-center': '1234' }, annotations },
  spec: {
    containers: [
      { name: 'main', image: 'registry.example/train:1', resources: { requests: { cpu: '1', memory: '1Gi' } } },
    ],
  },
});

/** The /proc status of the container's main process (found through the node's containerd). */
function containerStatus(stack: NodeStack, pod: V1Pod): Record<string, string> {
  const id = pod.status!.containerStatuses![0]!.containerID!.replace(/^containerd:\/\//, '');
  const line = stack.node
    .ctr(['tasks', 'ls'])
    .split('\n')
    .find((l) => l.startsWith(id));
  const pid = line?.split(/\s+/)[1];
  if (!pid) throw new Error(`no task for container ${id}`);
  const status = Object.fromEntries(
    readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .map((l) => l.split(/:\s*/, 2) as [string, string])
      .filter((kv) => kv.length === 2),
  );
  const root = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === '/');
  return { ...status, rootMount: root?.split(' ')[5] ?? '' };
}

t.test('Tessera installed on a real node (kubelet, containerd, kube-proxy) runs as shipped', async (t) => {
  const stack = await startNodeStack((l) => t.comment(l));
  t.teardown(async () => {
    await stack.stop();
    t.comment(`phases (s): ${stack.timings.map(([n, s]) => `${n} ${s.toFixed(1)}`).join('; ')}`);
  });
  const admin = api(stack.client('admin'));
  const alice = api(stack.client('alice@acme.example'));
  const bob = api(stack.client('bob@acme.example'));
  const rbac = stack.client('admin').makeApiClient(RbacAuthorizationV1Api);

  if (stack.installed.how === 'helm')
    await t.test('helm install --wait returns with every pod Ready', async (t) => {
      const pods = stack.installed.podsWhenInstalled ?? [];
      for (const name of ['tessera-webhook', 'tessera-extender', 'tessera-scheduler'])
        t.equal(
          pods.filter((p) => p.name.startsWith(`${name}-`) && p.ready).length,
          2,
          `${name}: 2 pods Ready when helm returned`,
        );
      t.same(
        pods.filter((p) => !p.ready).map((p) => p.name),
        [],
        `no pod unready when helm install --wait returned, after ${stack.installed.installSeconds?.toFixed(1)} s`,
      );
    });

  await t.test('Tessera’s pods run on the real node under the shipped securityContext', async (t) => {
    const pods = await stack.tesseraPods();
    for (const name of ['tessera-webhook', 'tessera-extender', 'tessera-scheduler']) {
      const running = pods.filter((p) => app(p) === name && p.status?.phase === 'Running');
      t.ok(running.length >= 1, `${name} runs`);
      for (const p of running) {
        t.equal(p.spec?.nodeName, NODE_NAME, `${p.metadata?.name} on the real node`);
        const s = containerStatus(stack, p);
        t.match(s.Uid, /^65532\s/, `${p.metadata?.name}: runs as 65532 (runAsNonRoot)`);
        t.equal(s.CapEff, '0000000000000000', 'no capabilities (drop ALL)');
        t.equal(s.NoNewPrivs, '1', 'allowPrivilegeEscalation: false');
        t.equal(s.Seccomp, '2', 'seccomp RuntimeDefault (filter mode)');
        t.match(s.rootMount, /^ro\b/, 'readOnlyRootFilesystem');
      }
    }
    const webhooks = pods.filter((p) => app(p) === 'tessera-webhook');
    t.equal(
      webhooks.filter((p) => p.spec?.nodeName === NODE_NAME).length,
      2,
      'both webhook replicas run, on one node (preferred anti-affinity)',
    );
    t.equal(
      pods.filter((p) => app(p) === 'tessera-extender' && ready(p)).length,
      2,
      'both extender replicas Ready (the standby could serve)',
    );
    t.equal(pods.filter(leads).length, 1, 'one of them labelled leader, the one the Service selects');
    t.same(
      pods
        .flatMap((p) => p.status?.containerStatuses ?? [])
        .filter((c) => c.restartCount > 0)
        .map((c) => c.name),
      [],
      'no container restarted (probes pass from the start)',
    );
  });

  // The fleet: two fraction H100 nodes run by KWOK; tenant namespaces by an admin.
  for (const name of ['h100-0', 'h100-1'])
    await createFakeNode(admin, fractionNode(name), { cpu: '96', memory: '1Ti', pods: '110' });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: 'platform-admins' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
      subjects: [{ kind: 'Group', name: 'platform-admins', apiGroup: 'rbac.authorization.k8s.io' }],
    },
  });
  await alice.createNamespace({ body: { metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } } });
  await alice.createNamespace({ body: { metadata: { name: 'scratch' } } });
  await rbac.createClusterRole({
    body: {
      metadata: { name: 'tenant-user' },
      rules: [
        {
          apiGroups: [''],
          resources: ['pods', 'pods/ephemeralcontainers', 'pods/binding', 'bindings'],
          verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
        },
        { apiGroups: [''], resources: ['namespaces'], verbs: ['create'] },
      ],
    },
  });
  for (const ns of ['vision', 'scratch'])
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'bob-edit' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'tenant-user' },
        subjects: [{ kind: 'User', name: 'bob@acme.example', apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: 'bob-namespaces' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'tenant-user' },
      subjects: [{ kind: 'User', name: 'bob@acme.example', apiGroup: 'rbac.authorization.k8s.io' }],
    },
  });
  // The service account controller gives each namespace its `default` account: wait for it.
  for (const ns of ['vision', 'scratch'])
    await until(`serviceaccount default in ${ns}`, () =>
      admin.readNamespacedServiceAccount({ name: 'default', namespace: ns }),
    );

  await t.test('the extender pod advertises fraction capacity on fraction nodes (RBAC: nodes/status)', async (t) => {
    const node = await until('tessera.io/gpu-milli on h100-0', async () => {
      const n = await admin.readNode({ name: 'h100-0' });
      return ['8k', '8000'].includes(String(n.status?.allocatable?.['tessera.io/gpu-milli'])) && n;
    });
    t.match(node.status!.capacity!['tessera.io/gpu-milli'], /^(8k|8000)$/);
  });

  await t.test('the API server calls the webhook through its Service: denials reach the client', async (t) => {
    await bob
      .createNamespace({ body: { metadata: { name: 'mine', labels: { 'tessera.io/tenant': 'research' } } } })
      .then(
        () => t.fail('should be denied'),
        (e) => t.match(message(e), /bob@acme.example may not set tessera.io\/tenant=research on namespace mine/),
      );
    await bob
      .createNamespacedPod({
        namespace: 'scratch',
        body: gpuPod('nogo', 'scratch', { 'tessera.io/gpu-fraction': '0.5' }),
      })
      .then(
        () => t.fail('should be denied'),
        (e) => t.match(message(e), /namespace scratch has no tessera.io\/tenant label/),
      );
    const forged = gpuPod('forged', 'vision', {
      'tessera.io/gpu-fraction': '0.5',
      'tessera.io/assignment': '{"node":"h100-0","gpus":[{"index":0,"milli":1000,"memoryMiB":1}]}',
    });
    await bob.createNamespacedPod({ namespace: 'vision', body: forged }).then(
      () => t.fail('should be denied'),
      (e) => t.match(message(e), /tessera.io\/assignment is written only by Tessera/),
    );
  });

  await t.test(
    'a fraction pod is admitted, scheduled by the tessera-scheduler pod through the extender Service, and wired',
    async (t) => {
      const seen: V1Pod[] = [];
      const watching = await new Watch(stack.client('admin')).watch(
        '/api/v1/namespaces/vision/pods',
        { fieldSelector: 'metadata.name=quarter' },
        (_phase, pod: V1Pod) => seen.push(pod),
        () => {},
      );
      t.teardown(() => watching.abort());
      await bob.createNamespacedPod({
        namespace: 'vision',
        body: gpuPod('quarter', 'vision', { 'tessera.io/gpu-fraction': '0.25' }),
      });
      const p = await until('quarter bound', async () => {
        const pod = await bob.readNamespacedPod({ name: 'quarter', namespace: 'vision' });
        return pod.spec?.nodeName ? pod : null;
      });
      t.equal(p.spec!.schedulerName, 'tessera-scheduler');
      t.match(p.spec!.nodeName, /^h100-[01]$/);
      t.same(p.spec!.containers[0]!.resources!.limits, { 'tessera.io/gpu-milli': '250' });
      t.match(p.spec!.containers[0]!.env, [
        {
          name: 'NVIDIA_VISIBLE_DEVICES',
          valueFrom: { fieldRef: { fieldPath: "metadata.annotations['tessera.io/visible-devices']" } },
        },
      ]);
      const assignment = JSON.parse(p.metadata!.annotations!['tessera.io/assignment']!);
      t.equal(assignment.node, p.spec!.nodeName);
      t.match(assignment.gpus, [{ milli: 250, memoryMiB: 20389 }]);
      t.match(p.metadata!.annotations!['tessera.io/policy-revision'], /^[0-9a-f]{8,}$/);
      const annotated = (x: V1Pod) => x.metadata?.annotations?.['tessera.io/assignment'] !== undefined;
      await until('the watch saw it bound', async () => seen.some((x) => x.spec?.nodeName));
      t.same(
        seen.filter((x) => annotated(x) !== Boolean(x.spec?.nodeName)).map((x) => x.metadata?.resourceVersion),
        [],
        'bind is one write: no version with the assignment and no node, or a node and no assignment',
      );
      t.ok(
        stack.node.dns.asked.includes('tessera-extender.tessera-system.svc.cluster.local'),
        'tessera-scheduler resolved the extender’s Service name through the cluster DNS',
      );
    },
  );

  await t.test('Bindings by a user are judged by the webhook through the API server', async (t) => {
    const held = gpuPod('held', 'vision', { 'tessera.io/gpu-fraction': '0.25' });
    (held.spec as { schedulingGates?: { name: string }[] }).schedulingGates = [{ name: 'example.com/hold' }];
    await bob.createNamespacedPod({ namespace: 'vision', body: held });
    await bob
      .createNamespacedPodBinding({
        name: 'held',
        namespace: 'vision',
        body: {
          apiVersion: 'v1',
          kind: 'Binding',
          metadata: { name: 'held', namespace: 'vision' },
          target: { apiVersion: 'v1', kind: 'Node', name: 'h100-0' },
        },
      })
      .then(
        () => t.fail('should be denied'),
        (e) =>
          t.match(
            message(e),
            /pod vision\/held asks for tessera.io\/gpu-milli, so only Tessera's extender may bind it/,
          ),
      );
    await bob.deleteNamespacedPod({ name: 'held', namespace: 'vision', gracePeriodSeconds: 0 });
  });

  await t.test('quota: the tenant cannot go over 12 GPU-equivalents', async (t) => {
    await bob.createNamespacedPod({
      namespace: 'vision',
      body: gpuPod('eight', 'vision', { 'tessera.io/gpu-count': '8' }),
    });
    await until(
      'eight bound',
      async () => (await bob.readNamespacedPod({ name: 'eight', namespace: 'vision' })).spec?.nodeName,
    );
    await bob
      .createNamespacedPod({ namespace: 'vision', body: gpuPod('four', 'vision', { 'tessera.io/gpu-count': '4' }) })
      .then(
        () => t.fail('should be denied'),
        (e) =>
          t.match(
            message(e),
            /tenant research has a quota of 12 GPU-equivalents; 8.25 are held by 2 pod\(s\) and this pod needs 4/,
          ),
      );
    await bob.deleteNamespacedPod({ name: 'eight', namespace: 'vision', gracePeriodSeconds: 0 });
    await new Promise((r) => setTimeout(r, 1000));
  });

  await t.test(
    'the extender leader pod dies in the middle of a burst: the standby pod takes over, no GPU is double-allocated',
    async (t) => {
      for (let i = 0; i < 12; i++)
        await bob.createNamespacedPod({
          namespace: 'vision',
          body: gpuPod(`burst-${i}`, 'vision', { 'tessera.io/gpu-fraction': '0.3' }),
        });
      await until(
        'some burst pods bound',
        async () =>
          (await bob.listNamespacedPod({ namespace: 'vision' })).items.filter(
            (p) => p.metadata?.name?.startsWith('burst-') && p.spec?.nodeName,
          ).length >= 3,
      );
      const leader = (await stack.tesseraPods()).find(leads)!;
      await admin.deleteNamespacedPod({ name: leader.metadata!.name!, namespace: 'tessera-system' });
      const pods = await until(
        'all burst pods bound',
        async () => {
          const list = (await bob.listNamespacedPod({ namespace: 'vision' })).items;
          return list.filter((p) => p.metadata?.name?.startsWith('burst-')).every((p) => p.spec?.nodeName) && list;
        },
        180_000,
      );
      const perGpu = new Map<string, number>();
      for (const p of pods) {
        const a = p.metadata?.annotations?.['tessera.io/assignment'];
        if (!a) continue;
        const assignment = JSON.parse(a) as { node: string; gpus: { index: number; milli: number }[] };
        t.equal(assignment.node, p.spec!.nodeName, `${p.metadata!.name}: assignment matches its node`);
        for (const g of assignment.gpus)
          perGpu.set(`${assignment.node}/${g.index}`, (perGpu.get(`${assignment.node}/${g.index}`) ?? 0) + g.milli);
      }
      t.ok(
        [...perGpu.values()].every((m) => m <= 1000),
        `no GPU above 1000m: ${JSON.stringify(Object.fromEntries(perGpu))}`,
      );
      await until(
        'another extender pod the Ready leader',
        async () => (await stack.tesseraPods()).some((p) => leads(p) && p.metadata?.name !== leader.metadata?.name),
        180_000,
      );
      t.pass('another extender pod is the Ready leader');
    },
  );

  await t.test('the extender leader can be evicted, as kubectl drain does, and the standby takes over', async (t) => {
    const leader = await until('an extender leader', async () => (await stack.tesseraPods()).find(leads));
    const name = leader.metadata!.name!;
    // As kubectl drain does: an eviction the budget refuses (429: the replica made after the last test is not Ready
    // yet) is tried again every 5 s until it is allowed.
    const started = Date.now();
    let refusals = 0;
    await waitUntil(
      `the Eviction API evicts ${name}`,
      () =>
        admin
          .createNamespacedPodEviction({
            name,
            namespace: 'tessera-system',
            body: { metadata: { name, namespace: 'tessera-system' } },
          })
          .then(
            () => true,
            (e) => {
              if (!/\b429\b|disruption budget/.test(message(e))) throw e;
              refusals++;
              return false;
            },
          ),
      180_000,
      5_000,
    );
    t.pass(
      `${name} evicted after ${((Date.now() - started) / 1000).toFixed(1)} s (${refusals} refusals by the budget while the other replica was not Ready)`,
    );
    await until(
      'another extender pod the Ready leader',
      async () => (await stack.tesseraPods()).some((p) => leads(p) && p.metadata?.name !== name),
      180_000,
    );
    t.pass('another extender pod is the Ready leader');
  });

  const core = api(stack.client('admin'));
  /** Both extender replicas Ready, one of them the labelled leader (after a fault, before the next). */
  const extenderSettled = () =>
    until(
      'both extender replicas Ready, one the leader',
      async () => {
        const pods = (await stack.tesseraPods()).filter(
          (p) => app(p) === 'tessera-extender' && !p.metadata?.deletionTimestamp,
        );
        return pods.filter(ready).length === 2 && pods.filter(leads).length === 1 && pods.find(leads);
      },
      240_000,
    );
  const deleteStream = async (prefix: string) => {
    stack.kubectl([
      '-n',
      'vision',
      'delete',
      'pods',
      '-l',
      `tessera.test/stream=${prefix}`,
      '--grace-period=0',
      '--wait=false',
    ]);
    await until(
      'the stream’s pods gone',
      async () =>
        (await admin.listNamespacedPod({ namespace: 'vision', labelSelector: `tessera.test/stream=${prefix}` })).items
          .length === 0,
    );
  };
  // The run's figures, printed together at the end.
  const figures: string[] = [];
  t.teardown(() => {
    for (const f of figures) t.comment(f);
  });

  await t.test('the extender leader is killed (SIGKILL): the handoff gap is measured and under 5 s', async (t) => {
    const leader = await extenderSettled();
    const probe = await startServiceProbe(stack, core);
    const stream = await streamGpuPods({
      user: bob,
      adminConfig: stack.client('admin'),
      namespace: 'vision',
      prefix: 'kill',
      fraction: '0.1',
      max: 25,
    });
    t.teardown(() => probe.stop());
    await new Promise((r) => setTimeout(r, 4_000));
    t.equal(probe.failures, 0, `no filter call failed before the kill (${probe.calls} calls through the Service)`);
    const id = leader.status!.containerStatuses![0]!.containerID!.replace(/^containerd:\/\//, '');
    const takeover = watchTakeover(stack, stack.client('admin').makeApiClient(DiscoveryV1Api), leader.metadata!.name!);
    t.teardown(() => takeover.stop());
    const killedAt = Date.now();
    stack.node.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
    await until(
      'a leader serving through the Service again',
      async () =>
        (await stack.tesseraPods()).some(leads) && probe.outages.at(-1)?.to !== null && Date.now() - killedAt > 3_000,
      120_000,
    );
    await new Promise((r) => setTimeout(r, 5_000));
    await stream.stop();
    await until('every GPU pod submitted around the kill bound', async () => stream.allBound(), 120_000);
    const gap = describeGap(probe, killedAt, Date.now());
    probe.stop();
    const wait = stream.longest();
    const after = (at: number | null) => (at === null ? 'not seen' : `${((at - killedAt) / 1000).toFixed(1)} s`);
    const line = `handoff gap, extender leader SIGKILL on the real node: ${gap.text}; longest GPU pod wait ${(wait.ms / 1000).toFixed(1)} s (${wait.pod}, ${stream.created.length} pods, one a second), longest admission ${(stream.longestAdmission().ms / 1000).toFixed(1)} s; the standby labelled leader after ${after(takeover.labelledAt)}, its endpoint ready in the Service's EndpointSlice after ${after(takeover.endpointAt)}`;
    figures.push(line);
    t.comment(line);
    // The timeline, for whoever reads a gap over budget: the probe's outages and the replicas' leadership changes.
    const rel = (ms: number) => `${ms >= killedAt ? '+' : ''}${((ms - killedAt) / 1000).toFixed(1)} s`;
    t.comment(
      `outages after the kill: ${probe.outages
        .filter((o) => (o.to ?? Date.now()) >= killedAt)
        .map(
          (o) =>
            `${rel(o.from)}..${o.to === null ? 'open' : rel(o.to)} (first: ${o.why.slice(0, 80)}; last: ${(o.lastWhy ?? o.why).slice(0, 80)})`,
        )
        .join('; ')}`,
    );
    for (const p of (await stack.tesseraPods()).filter((x) => app(x) === 'tessera-extender'))
      for (const l of stack.node.podLogs('tessera-system', p.metadata!.name!).split('\n')) {
        const json = l.slice(l.indexOf('{'));
        try {
          const e = JSON.parse(json) as { time?: number; msg?: string };
          if (e.time && e.time >= killedAt - 5_000 && /leader|stepped down|lead|label|lease/i.test(e.msg ?? ''))
            t.comment(`${p.metadata!.name} ${rel(e.time)}: ${e.msg}`);
        } catch {}
      }
    t.ok(gap.ms < 5_000, `the handoff gap of a leader kill is under 5 s: ${(gap.ms / 1000).toFixed(1)} s`);
    t.ok(stream.allBound(), `all ${stream.created.length} GPU pods submitted around the kill were placed`);
    await deleteStream('kill');
  });

  await t.test('device-plugin modes: MIG and time-slicing pools are placed through the extender pod too', async (t) => {
    const nodes: { name: string; pool: string; labels: Record<string, string>; resources: Record<string, string> }[] = [
      {
        name: 'a100-0',
        pool: 'a100-mig',
        labels: {
          'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB',
          'nvidia.com/gpu.count': '1',
          'nvidia.com/mig.strategy': 'mixed',
          'nvidia.com/mig-2g.20gb.count': '3',
        },
        resources: { 'nvidia.com/mig-2g.20gb': '3' },
      },
      {
        name: 'l4-0',
        pool: 'l4-timesliced',
        labels: {
          'nvidia.com/gpu.product': 'NVIDIA-L4',
          'nvidia.com/gpu.count': '1',
          'nvidia.com/gpu.sharing-strategy': 'time-slicing',
          'nvidia.com/gpu.replicas': '4',
        },
        resources: { 'nvidia.com/gpu.shared': '4' },
      },
    ];
    for (const n of nodes)
      await createFakeNode(
        admin,
        {
          metadata: { name: n.name, labels: { ...n.labels, 'tessera.io/pool': n.pool } },
          spec: { taints: [{ key: 'tessera.io/pool', value: n.pool, effect: 'NoSchedule' }] },
        },
        { cpu: '32', memory: '256Gi', pods: '110', ...n.resources },
      );
    const asks: [string, string, string, Record<string, string>][] = [
      ['mig-quarter', 'a100-mig', 'a100-0', { 'nvidia.com/mig-2g.20gb': '1' }],
      ['ts-quarter', 'l4-timesliced', 'l4-0', { 'nvidia.com/gpu.shared': '1' }],
    ];
    for (const [name, pool, node, limits] of asks) {
      await bob.createNamespacedPod({
        namespace: 'vision',
        body: gpuPod(name, 'vision', { 'tessera.io/pool': pool, 'tessera.io/gpu-fraction': '0.25' }),
      });
      const p = await until(`${name} bound`, async () => {
        const pod = await bob.readNamespacedPod({ name, namespace: 'vision' });
        return pod.spec?.nodeName ? pod : null;
      });
      t.equal(p.spec!.nodeName, node, `${name} placed on ${node}`);
      t.same(p.spec!.containers[0]!.resources!.limits, limits);
    }
  });

  await t.test(
    'a rotated serving certificate reaches the webhook pods through their Secret, without a restart',
    async (t) => {
      const dir = join(stack.node.dir, 'tessera-tls', 'webhook');
      const webhooks = async () =>
        (await stack.tesseraPods()).filter((p) => app(p) === 'tessera-webhook' && ready(p) && p.status?.podIP);
      const before = await webhooks();
      const restarts = before.map((p) => p.status?.containerStatuses?.[0]?.restartCount ?? 0);
      const secretSerial = () =>
        new X509Certificate(
          Buffer.from(
            stack.kubectl([
              '-n',
              'tessera-system',
              'get',
              'secret',
              'tessera-webhook-tls',
              '-o',
              'jsonpath={.data.tls\\.crt}',
            ]),
            'base64',
          ),
        ).serialNumber;
      const helm = stack.installed.how === 'helm';
      const oldSerial = helm ? secretSerial() : new X509Certificate(readFileSync(join(dir, 'tls.crt'))).serialNumber;
      // A new name on the certificate: `tessera certs rotate` re-issues it under the same CA (the caBundle stays).
      // Installed by the chart, the certificates live in its Secrets: the command is the chart's CronJob's, run from
      // here with one more name.
      const names = [
        '--dns',
        'tessera-webhook.tessera-system.svc',
        '--dns',
        'tessera-webhook.tessera-system.svc.cluster.local',
      ];
      const out = execFileSync(
        process.execPath,
        [
          join(REPO, 'cli', 'tessera.ts'),
          'certs',
          'rotate',
          ...(helm
            ? [
                '--secret',
                'tessera-system/tessera-webhook-tls',
                '--ca-secret',
                'tessera-webhook-ca',
                '--webhook-configuration',
                'tessera',
                '--kubeconfig',
                stack.cluster.kubeconfigFor('admin'),
              ]
            : ['--dir', dir]),
          '--name',
          'tessera-webhook',
          ...names,
        ],
        { encoding: 'utf8' },
      );
      const newSerial = helm ? secretSerial() : new X509Certificate(readFileSync(join(dir, 'tls.crt'))).serialNumber;
      t.not(newSerial, oldSerial, `tessera certs rotate re-issued the leaf: ${out.trim().split('\n')[0]}`);
      if (!helm) {
        const secret = stack.kubectl([
          '-n',
          'tessera-system',
          'create',
          'secret',
          'generic',
          'tessera-webhook-tls',
          `--from-file=${join(dir, 'tls.crt')}`,
          `--from-file=${join(dir, 'tls.key')}`,
          `--from-file=${join(dir, 'ca.crt')}`,
          '--dry-run=client',
          '-o',
          'yaml',
        ]);
        stack.kubectl(['apply', '-f', '-'], secret);
      }
      const started = Date.now();
      await until(
        'every webhook pod serving the new certificate',
        async () => {
          const serials = await Promise.all(before.map((p) => servedSerial(p.status!.podIP!)));
          return serials.every((x) => x === newSerial);
        },
        180_000,
      );
      t.pass(
        `both webhook pods serve the new certificate ${((Date.now() - started) / 1000).toFixed(0)} s after the Secret changed`,
      );
      const after = await webhooks();
      t.same(
        before.map(
          (p) => after.find((a) => a.metadata?.name === p.metadata?.name)?.status?.containerStatuses?.[0]?.restartCount,
        ),
        restarts,
        'no restart: the files were re-read',
      );
      await bob.createNamespacedPod({
        namespace: 'vision',
        body: gpuPod('after-rotation', 'vision', { 'tessera.io/gpu-fraction': '0.1' }),
      });
      t.pass('the API server still trusts it (same CA in the caBundle): a GPU pod is admitted');
    },
  );

  await t.test(
    'the webhook scaled to zero: GPU pods are rejected (fail closed), kube-system still runs pods',
    async (t) => {
      stack.kubectl(['-n', 'tessera-system', 'scale', 'deployment', 'tessera-webhook', '--replicas=0']);
      await until(
        'no webhook pod left',
        async () => !(await stack.tesseraPods()).some((p) => app(p) === 'tessera-webhook'),
      );
      await bob
        .createNamespacedPod({
          namespace: 'vision',
          body: gpuPod('closed', 'vision', { 'tessera.io/gpu-fraction': '0.5' }),
        })
        .then(
          () => t.fail('should fail closed'),
          (e) =>
            t.match(
              message(e),
              /failed calling webhook \W{0,4}(mutate|validate)\.tessera\.io\W{0,4}: failed to call webhook: Post \W{0,4}https:\/\/tessera-webhook\.tessera-system\.svc:443\/\w+\?timeout=5s\W{0,4}: (dial tcp 10\.96\.\d+\.\d+:443: connect: (connection refused|no route to host)|context deadline exceeded)/,
              // Refused once kube-proxy knows the Service has no endpoint; before, the gone pod's IP: no route, or a timeout.
              'through the Service: fail closed with the reason',
            ),
        );
      // A real pod in kube-system, on the real node, from an image the node has: the webhook is not asked.
      await admin.createNamespacedPod({
        namespace: 'kube-system',
        body: {
          metadata: { name: 'still-works' },
          spec: {
            nodeSelector: { 'kubernetes.io/hostname': NODE_NAME },
            automountServiceAccountToken: false,
            containers: [{ name: 'pause', image: 'registry.k8s.io/pause:3.10.2', imagePullPolicy: 'Never' }],
          },
        },
      });
      const sys = await until('still-works Running on the real node', async () => {
        const p = await admin.readNamespacedPod({ name: 'still-works', namespace: 'kube-system' });
        return p.status?.phase === 'Running' ? p : null;
      });
      t.equal(sys.spec?.nodeName, NODE_NAME);
      stack.kubectl(['-n', 'tessera-system', 'scale', 'deployment', 'tessera-webhook', '--replicas=2']);
      await until(
        'a webhook pod Ready again',
        async () => (await stack.tesseraPods()).some((p) => app(p) === 'tessera-webhook' && ready(p)),
        180_000,
      );
      await until(
        'GPU pods admitted again',
        () =>
          bob
            .createNamespacedPod({
              namespace: 'vision',
              body: gpuPod('reopened', 'vision', { 'tessera.io/gpu-fraction': '0.1' }),
            })
            .then(() => true),
        60_000,
      );
      t.pass('admission works again once a webhook pod is Ready behind the Service');
    },
  );

  await t.test('each Deployment rolls out again (kubectl rollout restart), as an upgrade would', async (t) => {
    const wanted: Record<string, number> = { 'tessera-webhook': 2, 'tessera-extender': 2, 'tessera-scheduler': 2 };
    const extenderDeployment = JSON.parse(
      stack.kubectl(['-n', 'tessera-system', 'get', 'deployment', 'tessera-extender', '-o', 'json']),
    ) as { spec: { strategy: { type: string } } };
    t.equal(extenderDeployment.spec.strategy.type, 'RollingUpdate', 'the extender rolls out with RollingUpdate');
    for (const [name, readyWanted] of Object.entries(wanted)) {
      const extender = name === 'tessera-extender';
      if (extender) await extenderSettled();
      const probe = extender ? await startServiceProbe(stack, core) : null;
      const stream = extender
        ? await streamGpuPods({
            user: bob,
            adminConfig: stack.client('admin'),
            namespace: 'vision',
            prefix: 'rollout',
            fraction: '0.1',
            max: 45,
          })
        : null;
      const started = Date.now();
      const before = new Set((await stack.tesseraPods()).filter((p) => app(p) === name).map((p) => p.metadata!.name!));
      stack.kubectl(['-n', 'tessera-system', 'rollout', 'restart', `deployment/${name}`]);
      const done = await until(
        `${name} rolled out`,
        async () => {
          const pods = (await stack.tesseraPods()).filter((p) => app(p) === name);
          return (
            pods.every((p) => !before.has(p.metadata!.name!)) &&
            pods.filter((p) => ready(p)).length >= readyWanted &&
            pods
          );
        },
        180_000,
      ).catch(async (e: Error) => {
        const pods = (await stack.tesseraPods()).filter((p) => app(p) === name);
        t.fail(
          `${name}: ${e.message}; pods: ${pods.map((p) => `${p.metadata?.name} ${before.has(p.metadata!.name!) ? 'old' : 'new'} ${p.spec?.nodeName ?? 'unscheduled'} ready=${ready(p)}`).join(', ')}`,
        );
        return null;
      });
      if (done)
        t.pass(`${name}: every pod replaced, ${readyWanted} Ready, in ${((Date.now() - started) / 1000).toFixed(0)} s`);
      if (probe && stream) {
        await new Promise((r) => setTimeout(r, 5_000));
        await stream.stop();
        await until('every GPU pod submitted during the rollout bound', async () => stream.allBound(), 120_000).catch(
          () => {},
        );
        const gap = describeGap(probe, started, Date.now());
        probe.stop();
        const wait = stream.longest();
        const line = `handoff gap, extender rollout (kubectl rollout restart, RollingUpdate) on the real node: ${gap.text}; longest GPU pod wait ${(wait.ms / 1000).toFixed(1)} s (${wait.pod}, ${stream.created.length} pods, one a second), longest admission ${(stream.longestAdmission().ms / 1000).toFixed(1)} s`;
        figures.push(line);
        t.comment(line);
        t.ok(gap.ms < 5_000, `the handoff gap of a rollout is under 5 s: ${(gap.ms / 1000).toFixed(1)} s`);
        t.ok(stream.allBound(), `all ${stream.created.length} GPU pods submitted during the rollout were placed`);
        await deleteStream('rollout');
      }
    }
  });

  // Installed with kustomize (TESSERA_NODE_INSTALL=kustomize) there is no release to upgrade.
  if (stack.installed.how === 'helm')
    await t.test(
      'helm upgrade from the chart of the previous commit to this one, while GPU pods run and more are submitted',
      async (t) => {
        // A clean tenant: earlier tests' pods go, so that quota leaves room for the upgrade's pods.
        stack.kubectl(['-n', 'vision', 'delete', 'pods', '--all', '--grace-period=0', '--wait=false']);
        await until(
          'vision empty',
          async () => (await admin.listNamespacedPod({ namespace: 'vision' })).items.length === 0,
        );
        const from = previousChart();
        t.comment(`from the chart of ${from.commit}${from.sameAsThis ? ' (identical to this one)' : ''}`);
        const image = stack.installed.image!;
        helm(stack.cluster, ['upgrade', 'tessera', from.dir, ...helmValues(image)]);
        t.pass(`helm upgrade --wait to the previous commit's chart returned`);
        // The GPU pods that run through the upgrade: fractions and whole GPUs on the KWOK fraction nodes.
        const running: [string, Record<string, string>][] = [
          ...[0, 1, 2, 3].map(
            (i) => [`up-quarter-${i}`, { 'tessera.io/gpu-fraction': '0.25' }] as [string, Record<string, string>],
          ),
          ...[0, 1].map((i) => [`up-whole-${i}`, { 'tessera.io/gpu-count': '1' }] as [string, Record<string, string>]),
        ];
        for (const [name, annotations] of running)
          await bob.createNamespacedPod({ namespace: 'vision', body: gpuPod(name, 'vision', annotations) });
        const before = await until('the running GPU pods bound', async () => {
          const pods = (await admin.listNamespacedPod({ namespace: 'vision' })).items;
          return pods.length === running.length && pods.every((p) => p.spec?.nodeName) && pods;
        });
        // This commit's chart with the image under a new tag: every Tessera Deployment rolls, as a release upgrade does.
        const next = `${image.slice(0, image.lastIndexOf(':'))}:${image.slice(image.lastIndexOf(':') + 1)}-upgraded`;
        stack.node.ctr(['images', 'tag', '--force', image, next]);
        const probe = await startServiceProbe(stack, core);
        const stream = await streamGpuPods({
          user: bob,
          adminConfig: stack.client('admin'),
          namespace: 'vision',
          prefix: 'upgrade',
          fraction: '0.1',
          max: 60,
        });
        const started = Date.now();
        await helmAsync(stack.cluster, ['upgrade', 'tessera', CHART, ...helmValues(next)]);
        const upgradeSeconds = (Date.now() - started) / 1000;
        t.pass(
          `helm upgrade --wait to this commit's chart (image ${next}) returned after ${upgradeSeconds.toFixed(1)} s`,
        );
        await new Promise((r) => setTimeout(r, 5_000));
        await stream.stop();
        await until('every GPU pod submitted during the upgrade bound', async () => stream.allBound(), 180_000).catch(
          () => {},
        );
        const gap = describeGap(probe, started, Date.now());
        probe.stop();
        const wait = stream.longest();
        const admission = stream.longestAdmission();
        const line = `helm upgrade under load on the real node: ${upgradeSeconds.toFixed(1)} s; handoff gap ${gap.text}; longest GPU pod wait ${(wait.ms / 1000).toFixed(1)} s (${wait.pod}), longest admission ${(admission.ms / 1000).toFixed(1)} s (${admission.pod}); ${stream.created.length} pods submitted, ${stream.refusedCreates.length} create calls refused and made again${stream.refusedCreates[0] ? ` (first: ${stream.refusedCreates[0].slice(0, 400)})` : ''}`;
        figures.push(line);
        t.comment(line);
        t.ok(
          stream.allBound(),
          `every pending GPU pod placed afterwards: ${stream.created.length} submitted during the upgrade`,
        );
        const after = (await admin.listNamespacedPod({ namespace: 'vision' })).items;
        for (const p of before) {
          const now = after.find((a) => a.metadata?.uid === p.metadata?.uid);
          t.ok(
            now &&
              now.spec?.nodeName === p.spec?.nodeName &&
              now.metadata?.annotations?.['tessera.io/assignment'] ===
                p.metadata?.annotations?.['tessera.io/assignment'],
            `${p.metadata?.name}: still on ${p.spec?.nodeName} with its assignment (none lost)`,
          );
        }
        const perGpu = new Map<string, number>();
        let unassigned = 0;
        for (const p of after.filter((x) => x.spec?.nodeName)) {
          const a = p.metadata?.annotations?.['tessera.io/assignment'];
          if (!a || JSON.parse(a).node !== p.spec?.nodeName) unassigned++;
          for (const g of (a ? JSON.parse(a).gpus : []) as { index: number; milli: number }[])
            perGpu.set(`${p.spec!.nodeName}/${g.index}`, (perGpu.get(`${p.spec!.nodeName}/${g.index}`) ?? 0) + g.milli);
        }
        t.equal(unassigned, 0, 'every bound GPU pod carries its assignment, for its own node');
        t.ok(
          [...perGpu.values()].every((m) => m <= 1000),
          `no GPU double-given (at most 1000m each): ${JSON.stringify(Object.fromEntries(perGpu))}`,
        );
        const tessera = await stack.tesseraPods();
        for (const name of ['tessera-webhook', 'tessera-extender'])
          t.equal(
            tessera.filter((p) => app(p) === name && ready(p) && p.spec?.containers[0]?.image === next).length,
            2,
            `${name}: 2 pods of the new release Ready`,
          );
        stack.kubectl(['-n', 'vision', 'delete', 'pods', '--all', '--grace-period=0', '--wait=false']);
        await until(
          'vision empty',
          async () => (await admin.listNamespacedPod({ namespace: 'vision' })).items.length === 0,
        );
      },
    );

  const report = new FractionReport();
  const results: DeliveryResult[] = [];
  t.teardown(() => {
    const file = report.writeIfAsked();
    if (file) t.comment(`report of ${report.pods.length} fraction pods written to ${file}`);
  });

  await t.test('fraction pods on the real node through the downward API (the policy as shipped)', async (t) => {
    await prepareTenants(stack);
    await labelFractionNode(stack, 1000 * stack.gpus.gpus.length);
    checkNoNvidiaRuntime(t, stack);
    const burst = await runBurst({
      stack,
      admin,
      user: api(stack.client('carol@acme.example')),
      adminConfig: stack.client('admin'),
      delivery: 'downward-api',
      prefix: 'dapi',
      perTenant: 4,
      fraction: '0.25',
      log: (l) => t.comment(l),
    });
    for (const p of burst.pods) report.add(p);
    t.same(burst.refused, [], 'the kubelet refused no pod');
    checkBurst(t, burst, stack.gpus.gpus.length);
    checkConcurrentBinds(t, burst.pods, burst.bindSpreadMs, 'the burst', burst.bindTimesFrom);
    results.push(summarize('downward-api', burst));
    await deleteBurst({ admin, stack }, burst);
  });

  // Tessera's node agent serves the real node from here on.
  let agent: NodeAgent | null = null;
  t.teardown(async () => {
    await agent?.stop();
  });
  const burstOf = (t: Test, delivery: Delivery, prefix: string, more: Partial<Parameters<typeof runBurst>[0]> = {}) =>
    runBurst({
      stack,
      admin,
      user: api(stack.client('carol@acme.example')),
      adminConfig: stack.client('admin'),
      delivery,
      prefix,
      perTenant: 4,
      fraction: '0.25',
      log: (l) => t.comment(l),
      ...more,
    });
  const agentBurst = async (t: Test, delivery: Delivery, prefix: string) => {
    const burst = await burstOf(t, delivery, prefix);
    for (const p of burst.pods) report.add(p);
    t.same(burst.refused, [], 'the kubelet refused no pod');
    checkBurst(t, burst, stack.gpus.gpus.length);
    checkConcurrentBinds(t, burst.pods, burst.bindSpreadMs, 'the burst', burst.bindTimesFrom);
    await deleteBurst({ admin, stack }, burst);
    return burst;
  };
  const agentServing = (delivery: string) =>
    until(
      `${NODE_NAME} served by the agent in ${delivery}, 2000 gpu-milli from the kubelet`,
      async () => {
        const n = await admin.readNode({ name: NODE_NAME });
        const l = n.metadata?.labels ?? {};
        const a = String(n.status?.allocatable?.['tessera.io/gpu-milli'] ?? '');
        return (
          l['tessera.io/node-agent'] === 'serving' &&
          l['tessera.io/gpu-delivery'] === delivery &&
          ['2k', '2000'].includes(a)
        );
      },
      120_000,
    );

  await t.test(
    'fraction pods through the node agent, cdi-cri (picked from the node’s CDI spec): containerd injects exactly the assigned GPUs',
    async (t) => {
      t.comment(`agent RBAC, as shipped: ${await shippedAgentRole(stack)}`);
      const revision = await setPoolDelivery(stack, 'auto');
      t.pass(
        `pool shared-h100 has delivery: {mode: auto} (policy revision ${revision}); the webhook no longer wires NVIDIA_VISIBLE_DEVICES`,
      );
      agent = await startNodeAgent({ cluster: stack.cluster, node: stack.node, gpus: stack.gpus, delivery: 'auto' });
      await agentServing('cdi-cri');
      const burst = await agentBurst(t, 'cdi-cri', 'cdi');
      results.push(summarize('cdi-cri', burst));
    },
  );

  await t.test('cdi-cri through concurrent binds with the agent and the kubelet restarted mid-run', async (t) => {
    const first = await burstOf(t, 'cdi-cri', 'restart', {
      midRun: async () => {
        await agent!.restart();
        t.comment('the agent restarted');
        await stack.node.restartKubelet();
        t.comment('the kubelet restarted');
      },
    });
    // A pod the kubelet admitted while the agent was away is refused by the kubelet itself (its device manager has no
    // plugin to ask, or no healthy device): a clear error, and a pod a controller would make again. Made again here.
    for (const r of first.refused)
      t.match(
        `${r.reason}: ${r.message}`,
        // The kubelet's own messages: the resource, the plugin, or the agent's socket it could not dial.
        /tessera\.io\/gpu-milli|Tessera's node agent|device plugin|tessera-gpu-milli\.sock/,
        `${r.namespace}/${r.name} refused by the kubelet while the agent was away, saying why: ${r.reason}: ${r.message}`,
      );
    t.comment(
      `${first.pods.length} pods ran through the restarts, ${first.refused.length} were refused and are made again`,
    );
    // Deleted, not waited for: a kubelet restarted after refusing them may hold them a while (seen here).
    for (const r of first.refused)
      await admin.deleteNamespacedPod({ name: r.name, namespace: r.namespace, gracePeriodSeconds: 0 }).catch(() => {});
    const again = first.refused.length
      ? await burstOf(t, 'cdi-cri', 'restart', {
          only: first.refused.map((r) => [r.tenant, r.namespace, `${r.name}-again`] as const),
        })
      : { pods: [], refused: [], bindSpreadMs: 0 };
    t.same(again.refused, [], 'made again, none is refused');
    const all = { pods: [...first.pods, ...again.pods], refused: [], bindSpreadMs: first.bindSpreadMs };
    for (const p of all.pods) report.add(p);
    t.equal(all.pods.length, 8, 'all 8 pods ran');
    checkBurst(t, all, stack.gpus.gpus.length);
    // No timing check here: pods the scheduler sees while the agent is away wait for its capacity to come back.
    t.comment(`the first 8 pods bound within ${first.bindSpreadMs} ms (the restarts hold some back)`);
    await deleteBurst({ admin, stack }, first);
    await deleteBurst({ admin, stack }, again);
  });

  for (const mode of ['envvar', 'volume-mounts'] as const)
    await t.test(`fraction pods through the node agent, ${mode} (set by --delivery)`, async (t) => {
      await agent!.restart(mode);
      await agentServing(mode);
      const burst = await agentBurst(t, mode, mode === 'envvar' ? 'env' : 'mounts');
      results.push(summarize(mode, burst));
    });

  await t.test('Allocate latency, from the agent’s log of every Allocate of the run', async (t) => {
    // Every agent process of the run appends to one log; each answered Allocate logs its duration ("Allocate done").
    const ms = readFileSync(agent!.logFile, 'utf8')
      .split('\n')
      .flatMap((l) => {
        try {
          const e = JSON.parse(l) as { msg?: string; ms?: number };
          return e.msg === 'Allocate done' && typeof e.ms === 'number' ? [e.ms] : [];
        } catch {
          return [];
        }
      });
    const ran = report.pods.filter((p) => p.delivery !== 'downward-api').length;
    t.equal(ms.length, ran, `one answered Allocate per pod that ran through the agent: ${ms.length} of ${ran}`);
    const line = `Allocate on the real node: p50 ${percentile(ms, 50)} ms, p99 ${percentile(ms, 99)} ms, max ${Math.max(...ms)} ms over ${ms.length} calls`;
    figures.push(line);
    t.comment(line);
    t.comment(
      `kubelet_device_plugin_alloc_duration_seconds (this kubelet process, buckets): ${JSON.stringify(histogram(await stack.node.kubeletMetrics(), 'kubelet_device_plugin_alloc_duration_seconds', (l) => l.includes('tessera.io/gpu-milli')))}`,
    );
  });

  t.teardown(() => {
    for (const r of results)
      t.comment(
        `delivery ${r.delivery}: ${r.pods} pods bound within ${r.bindSpreadMs} ms; bind to running p50 ${r.bindToRunningMs.p50} ms, p99 ${r.bindToRunningMs.p99} ms, max ${r.bindToRunningMs.max} ms`,
      );
    const without = report.pods.filter((p) => p.delivery === 'downward-api').map((p) => p.bindToRunningMs);
    const withAgent = report.pods.filter((p) => p.delivery !== 'downward-api').map((p) => p.bindToRunningMs);
    if (without.length && withAgent.length)
      t.comment(
        `bind to running on the real node: without the agent (downward API) p50 ${percentile(without, 50)} ms, p99 ${percentile(without, 99)} ms over ${without.length} pods; with the agent (every delivery mode, restarts included) p50 ${percentile(withAgent, 50)} ms, p99 ${percentile(withAgent, 99)} ms over ${withAgent.length} pods`,
      );
  });

  await t.test('no Tessera pod was refused anything by the API server under the shipped RBAC', async (t) => {
    const pods = await stack.tesseraPods();
    for (const p of pods.filter((x) => x.spec?.nodeName)) {
      const logs = stack.node.podLogs('tessera-system', p.metadata!.name!);
      t.notMatch(logs, /forbidden|\b403\b/i, `${p.metadata!.name}: no 403 in its log`);
    }
  });

  // Last, since it takes Tessera off the only real node: the replacements of the evicted pods go to a KWOK node made
  // now (before, a rolling update could have put a pod there), where KWOK reports them Running and Ready without
  // running them. That is enough for the disruption budgets to let the next eviction through, which is what decides
  // whether a drain completes; it says nothing about the replacements serving.
  await t.test('kubectl drain of the extender leader’s node completes (the budgets let it through)', async (t) => {
    const leader = await extenderSettled();
    t.equal(leader.spec?.nodeName, NODE_NAME, 'the leader runs on the real node');
    await createFakeNode(
      admin,
      { metadata: { name: 'spare-0', labels: {} } },
      { cpu: '32', memory: '64Gi', pods: '110' },
    );
    await admin
      .deleteNamespacedPod({ name: 'still-works', namespace: 'kube-system', gracePeriodSeconds: 0 })
      .catch(() => {});
    const started = Date.now();
    const drain = spawnSync(
      stack.cluster.binaries.kubectl,
      [
        '--kubeconfig',
        stack.cluster.kubeconfigFor('admin'),
        'drain',
        NODE_NAME,
        '--ignore-daemonsets',
        '--delete-emptydir-data',
        '--timeout=300s',
      ],
      { encoding: 'utf8' },
    );
    const out = `${drain.stdout}\n${drain.stderr}`;
    t.equal(
      drain.status,
      0,
      `kubectl drain ${NODE_NAME} completed in ${((Date.now() - started) / 1000).toFixed(1)} s${drain.status === 0 ? '' : `: ${out.slice(-600)}`}`,
    );
    const left = (await stack.tesseraPods()).filter((p) => p.spec?.nodeName === NODE_NAME);
    t.same(
      left.map((p) => p.metadata?.name),
      [],
      'no Tessera pod left on the drained node',
    );
    t.match(out, new RegExp(`pod/${leader.metadata!.name} evicted`), 'the leader was evicted');
    t.comment(
      `kubectl drain: ${out.trim().split('\n').length} lines; ${(out.match(/disruption budget/g) ?? []).length} evictions refused by a budget and retried`,
    );
    stack.kubectl(['uncordon', NODE_NAME]);
  });
});
