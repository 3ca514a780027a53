// `npm run demo`: Tessera on a local control plane. Starts etcd, kube-apiserver, kube-scheduler,
// kube-controller-manager and KWOK (which runs the fake GPU nodes and their pods), runs the webhook and the extender,
// registers them, creates a GPU fleet that matches the example policy's pools, submits tenant workloads (including bad
// ones), and prints what was admitted or denied and why, where each pod landed, per-GPU occupancy, utilisation per
// pool and tenant, a Job that runs and ends and hands its GPUs and quota back, and the drift a policy change reveals.
// It also runs one GPU VM (KubeVirt's CRDs, with a stand-in for virt-controller) and one pod synced from a virtual
// cluster (a stand-in for vCluster's syncer); see test/fixtures/kubevirt-controller.ts and vcluster-syncer.ts. Then it shuts
// everything down.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  NodeV1Api,
  RbacAuthorizationV1Api,
  SchedulingV1Api,
  type V1Pod,
} from '@kubernetes/client-node';
import { auditPods } from '../../core/admission/audit.ts';
import { equivalentsOfPod } from '../../core/pools/equivalents.ts';
import { staticClusterView } from '../../core/admission/cluster-view.ts';
import type { KubeNamespace, KubePod } from '../../core/kube-objects.ts';
import { compilePolicy } from '../../core/policy/compile.ts';
import { formatDrift } from '../../cli/audit.ts';
import { createFakeNode, startStack } from '../e2e/stack.ts';
import { lifecycleAnnotations } from '../kwok/kwok.ts';
import {
  grantKubevirtController,
  gpuVmi,
  installKubevirtCrds,
  VIRT_CONTROLLER_IDENTITY,
  VirtControllerStandIn,
  vmOf,
} from '../fixtures/kubevirt-controller.ts';
import { grantSyncerRole, syncerIdentity, VClusterSyncerStandIn } from '../fixtures/vcluster-syncer.ts';
import { DEMO_USERS, FLEET, SUBMISSIONS } from './workloads.ts';

// The example policy with its two VM pools (a superset of ../shared/examples/policy.yaml).
const POLICY = readFileSync(new URL('../../../shared/examples/vm/policy.yaml', import.meta.url), 'utf8');
const VCLUSTER_NS = 'vcluster-team1';
const SYNCER = syncerIdentity(VCLUSTER_NS, 'team1');
const started = Date.now();
const say = (line = '') => console.log(line);
const step = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}`);

function firstLine(e: unknown): string {
  const body = (e as { body?: unknown }).body;
  let text = typeof body === 'string' ? body : JSON.stringify(body ?? '');
  try {
    text = (JSON.parse(text) as { message?: string }).message ?? text;
  } catch {
    // not JSON
  }
  const m = /Tessera denied this (?:request|pod)[^\n]*\n- (.*)/.exec(text);
  return (m ? m[1]! : text).split('\n')[0]!.replace(/^admission webhook "[^"]+" denied the request: /, '');
}

const bar = (milli: number) => '#'.repeat(Math.round(milli / 100)).padEnd(10, '.');

async function main(): Promise<void> {
  step('starting a local control plane (the first run builds it and KWOK from source)');
  const stack = await startStack({
    policy: POLICY,
    progress: (l) => step(l),
    identities: [VIRT_CONTROLLER_IDENTITY, SYNCER],
  });
  try {
    const admin = stack.client('admin').makeApiClient(CoreV1Api);
    const alice = stack.client('alice@acme.example').makeApiClient(CoreV1Api);
    const rbac = stack.client('admin').makeApiClient(RbacAuthorizationV1Api);
    step(
      `creating the GPU fleet: ${FLEET.length} nodes in 5 pools (fraction H100s, MIG A100s, time-sliced L4s, a sovereign EU node, passthrough H100s for VMs), run by KWOK`,
    );
    for (const n of FLEET) {
      const taints = [{ key: 'tessera.io/pool', value: n.pool, effect: 'NoSchedule' }];
      await createFakeNode(
        admin,
        { metadata: { name: n.name, labels: { ...n.labels, 'tessera.io/pool': n.pool } }, spec: { taints } },
        n.resources,
      );
    }
    step('alice (platform admin) creates the nvidia RuntimeClass, the priority classes and the tenant namespaces');
    await stack
      .client('alice@acme.example')
      .makeApiClient(NodeV1Api)
      .createRuntimeClass({ body: { metadata: { name: 'nvidia' }, handler: 'nvidia' } });
    for (const [name, value] of [
      ['research-batch', 1000],
      ['research-interactive', 2000],
      ['payments-serving', 5000],
    ] as const) {
      await stack
        .client('alice@acme.example')
        .makeApiClient(SchedulingV1Api)
        .createPriorityClass({ body: { metadata: { name }, value } });
    }
    await rbac.createClusterRole({
      body: {
        metadata: { name: 'tenant-user' },
        rules: [
          {
            apiGroups: [''],
            resources: ['pods'],
            verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
          },
          { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
          { apiGroups: ['kubevirt.io'], resources: ['virtualmachines'], verbs: ['get', 'list', 'create', 'delete'] },
        ],
      },
    });
    const namespaces: [string, string | null, string[]][] = [
      ['vision', 'research', ['bob', 'mallory']],
      ['nlp', 'research', ['bob']],
      ['risk', 'payments-ml', ['carol']],
      ['scratch', null, ['bob']],
      [VCLUSTER_NS, 'research', []],
    ];
    for (const [name, tenant, users] of namespaces) {
      await alice.createNamespace({
        body: { metadata: { name, labels: tenant ? { 'tessera.io/tenant': tenant } : {} } },
      });
      await admin.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: 'default' } } });
      for (const u of users) {
        await rbac.createNamespacedRoleBinding({
          namespace: name,
          body: {
            metadata: { name: `${u}-pods` },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'tenant-user' },
            subjects: [
              { kind: 'User', name: DEMO_USERS[u as keyof typeof DEMO_USERS], apiGroup: 'rbac.authorization.k8s.io' },
            ],
          },
        });
      }
    }
    // The capacity controller has to have advertised tessera.io/gpu-milli before fraction pods can fit.
    for (let i = 0; i < 100; i++) {
      const n = await admin.readNode({ name: 'h100-1' });
      if (n.status?.allocatable?.['tessera.io/gpu-milli']) break;
      await new Promise((r) => setTimeout(r, 100));
    }

    step('installing KubeVirt’s VirtualMachine CRDs; vCluster team1 gets its host namespace and its syncer’s Role');
    await installKubevirtCrds(stack.client('admin'));
    await grantKubevirtController(stack.client('admin'));
    await grantSyncerRole(stack.client('admin'), VCLUSTER_NS, 'team1');
    await admin.createNamespacedServiceAccount({
      namespace: VCLUSTER_NS,
      body: { metadata: { name: 'vc-workload-team1' } },
    });

    step(`submitting ${SUBMISSIONS.length} workloads through the API server`);
    const results: { user: string; ns: string; name: string; what: string; verdict: string }[] = [];
    for (const s of SUBMISSIONS) {
      const client = stack.client(DEMO_USERS[s.user]).makeApiClient(CoreV1Api);
      const ns = s.pod.metadata!.namespace!;
      try {
        const info = await client.createNamespacedPodWithHttpInfo({ namespace: ns, body: s.pod as V1Pod });
        // Warning headers: 299 - "text", 299 - "text" ...
        const warnings = [...(info.headers['warning'] ?? '').matchAll(/299 - "((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
        results.push({
          user: s.user,
          ns,
          name: s.pod.metadata!.name!,
          what: s.what,
          verdict: warnings.length > 0 ? `admitted, warning: ${warnings.join(' | ').slice(0, 120)}` : 'admitted',
        });
      } catch (e) {
        results.push({
          user: s.user,
          ns,
          name: s.pod.metadata!.name!,
          what: s.what,
          verdict: `DENIED: ${firstLine(e)}`,
        });
      }
    }
    // A GPU VM: bob creates a running VirtualMachine; the virt-controller stand-in creates its VMI and launcher pod.
    step(
      'bob starts VirtualMachine vision/gpu-vm (a passthrough H100); virt-controller (stand-in) creates its VMI and virt-launcher pod',
    );
    const vm = gpuVmi('gpu-vm', 'vision', ['nvidia.com/GH100_H100_SXM5_80GB'], {
      labels: { team: 'ml', 'cost-center': '4200' },
    });
    const verdictOf = (error: string | null) =>
      error === null ? 'admitted' : `DENIED: ${error.split('\n')[0]!.slice(0, 200)}`;
    const vmError = await stack
      .client(DEMO_USERS.bob)
      .makeApiClient(CustomObjectsApi)
      .createNamespacedCustomObject({
        group: 'kubevirt.io',
        version: 'v1',
        namespace: 'vision',
        plural: 'virtualmachines',
        body: vmOf(vm),
      })
      .then(() => null)
      .catch((e: unknown) => firstLine(e));
    results.push({
      user: 'bob',
      ns: 'vision',
      name: 'gpu-vm',
      what: 'VirtualMachine, a passthrough H100 (the tenant already holds 10 of its 12)',
      verdict: verdictOf(vmError),
    });
    if (vmError === null) {
      const controller = new VirtControllerStandIn(stack.client(VIRT_CONTROLLER_IDENTITY.user));
      const started = await controller.startVm('vision', 'gpu-vm');
      const launched =
        started.error === null ? await controller.launch('vision', 'gpu-vm') : { pod: null, error: started.error };
      results.push({
        user: 'kubevirt',
        ns: 'vision',
        name: launched.pod?.metadata?.name ?? 'virt-launcher-gpu-vm-…',
        what: 'its virt-launcher pod (nvidia.com/GH100_H100_SXM5_80GB: 1)',
        verdict: verdictOf(launched.error),
      });
    }
    // A pod written inside vCluster team1, synced to the host by the syncer stand-in under the syncer's account.
    step(
      'inside vCluster team1 a notebook asks for a quarter GPU and labels itself tenant payments-ml; the syncer (stand-in) copies it to the host',
    );
    const syncer = new VClusterSyncerStandIn('team1', VCLUSTER_NS, stack.client(SYNCER.user).makeApiClient(CoreV1Api));
    const synced = await syncer.create({
      metadata: {
        name: 'notebook',
        namespace: 'default',
        labels: { team: 'ml', 'cost-center': '4200', 'tessera.io/tenant': 'payments-ml' },
        annotations: { 'tessera.io/gpu-fraction': '0.25' },
      },
      spec: {
        runtimeClassName: 'nvidia',
        containers: [
          {
            name: 'main',
            image: 'registry.acme.example/notebook:1',
            resources: { requests: { cpu: '1', memory: '4Gi' } },
          },
        ],
      },
    });
    results.push({
      user: 'vc-team1',
      ns: VCLUSTER_NS,
      name: syncer.hostName('notebook', 'default'),
      what: 'synced from vCluster team1: gpu-fraction 0.25, pod label tessera.io/tenant=payments-ml',
      verdict: verdictOf(synced.error),
    });
    const admittedCount = results.filter((r) => r.verdict.startsWith('admitted')).length;
    step(`waiting for tessera-scheduler to place the ${admittedCount} admitted pods`);
    let pods: V1Pod[] = [];
    for (let i = 0; i < 150; i++) {
      pods = (await admin.listPodForAllNamespaces()).items.filter((p) => p.metadata?.namespace !== 'kube-system');
      const waiting = pods.filter(
        (p) =>
          !p.spec?.nodeName &&
          !p.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.reason === 'Unschedulable'),
      );
      if (waiting.length === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }

    say();
    say('ADMISSION (mutating + validating webhook, failurePolicy: Fail)');
    const w = Math.max(...results.map((r) => `${r.ns}/${r.name}`.length));
    for (const r of results)
      say(`  ${`${r.ns}/${r.name}`.padEnd(w)}  ${r.user.padEnd(7)}  ${r.what}\n  ${''.padEnd(w)}  -> ${r.verdict}`);

    say();
    say('PLACEMENT (kube-scheduler + Tessera extender: filter, prioritize, bind)');
    for (const p of [...pods].sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1))) {
      const limits = Object.entries(p.spec?.containers?.[0]?.resources?.limits ?? {})
        .filter(([k]) => /tessera|nvidia/.test(k))
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      const assignment = p.metadata?.annotations?.['tessera.io/assignment'];
      const gpus = assignment
        ? ` GPUs ${(JSON.parse(assignment) as { gpus: { index: number; milli: number }[] }).gpus.map((g) => `${g.index}:${g.milli}m`).join(',')}`
        : '';
      const pending = p.status?.conditions?.find(
        (c) => c.type === 'PodScheduled' && c.reason === 'Unschedulable',
      )?.message;
      say(
        `  ${`${p.metadata!.namespace}/${p.metadata!.name}`.padEnd(w)}  ${limits.padEnd(30)} ${p.spec?.nodeName ? `-> ${p.spec.nodeName}${gpus}` : `Pending: ${(pending ?? '').slice(0, 110)}`}`,
      );
    }

    say();
    say('GPU OCCUPANCY');
    for (const n of FLEET.filter((x) => x.pool === 'shared-h100')) {
      const perGpu = new Map<number, { milli: number; pods: string[] }>();
      for (const p of pods) {
        const a = p.metadata?.annotations?.['tessera.io/assignment'];
        if (!a || p.spec?.nodeName !== n.name) continue;
        for (const g of (JSON.parse(a) as { gpus: { index: number; milli: number }[] }).gpus) {
          const e = perGpu.get(g.index) ?? { milli: 0, pods: [] };
          e.milli += g.milli;
          e.pods.push(`${p.metadata!.name}(${p.metadata!.namespace === 'risk' ? 'payments-ml' : 'research'})`);
          perGpu.set(g.index, e);
        }
      }
      say(`  ${n.name} (fraction, ${n.pool}):`);
      for (let g = 0; g < 8; g++) {
        const e = perGpu.get(g) ?? { milli: 0, pods: [] };
        say(`    GPU ${g} [${bar(e.milli)}] ${String(e.milli).padStart(4)}m  ${e.pods.join(' ')}`);
      }
    }
    for (const n of FLEET.filter((x) => x.pool !== 'shared-h100')) {
      const onNode = pods.filter((p) => p.spec?.nodeName === n.name);
      const used = new Map<string, number>();
      for (const p of onNode)
        for (const [k, v] of Object.entries(p.spec?.containers?.[0]?.resources?.limits ?? {}))
          if (/nvidia/.test(k)) used.set(k, (used.get(k) ?? 0) + Number(v));
      const parts = Object.entries(n.resources)
        .filter(([k]) => /nvidia/.test(k))
        .map(([k, total]) => `${k.replace('nvidia.com/', '')} ${used.get(k) ?? 0}/${total}`);
      say(`  ${n.name} (${n.pool}): ${parts.join(', ')}`);
    }

    const compiled = compilePolicy([{ name: 'policy.yaml', text: POLICY }]);
    if (!compiled.ok) throw new Error('policy');
    const policy = compiled.policy;
    say();
    say('UTILISATION');
    const capacity: Record<string, number> = {
      'shared-h100': 16,
      'a100-mig': 16,
      'l4-timesliced': 8,
      'sovereign-eu': 8,
      'vm-h100': 8,
    };
    const byPool = new Map<string, number>();
    const byTenant = new Map<string, number>();
    const tenantOf: Record<string, string> = {
      vision: 'research',
      nlp: 'research',
      risk: 'payments-ml',
      [VCLUSTER_NS]: 'research',
    };
    for (const p of pods) {
      if (!p.spec?.nodeName) continue;
      const e = equivalentsOfPod(p as KubePod, policy);
      const pool = p.metadata?.annotations?.['tessera.io/pool'] ?? '?';
      byPool.set(pool, (byPool.get(pool) ?? 0) + e);
      const t = tenantOf[p.metadata!.namespace!] ?? '-';
      byTenant.set(t, (byTenant.get(t) ?? 0) + e);
    }
    for (const [pool, cap] of Object.entries(capacity))
      say(
        `  pool ${pool.padEnd(14)} ${(byPool.get(pool) ?? 0).toFixed(2).padStart(6)} of ${cap} GPUs allocated (${(((byPool.get(pool) ?? 0) / cap) * 100).toFixed(0)} %)`,
      );
    for (const t of policy.tenants)
      say(
        `  tenant ${t.name.padEnd(12)} ${(byTenant.get(t.name) ?? 0).toFixed(2).padStart(6)} of its quota of ${t.quotaGpus} GPU-equivalents`,
      );

    say();
    say('LIFECYCLE (KWOK runs the nodes: pods go Running by themselves and end after their kwok.tessera.io/run-for)');
    const held = async (): Promise<number> =>
      (await admin.listPodForAllNamespaces()).items
        .filter(
          (p) =>
            ['vision', 'nlp'].includes(p.metadata!.namespace!) &&
            p.spec?.nodeName &&
            !['Succeeded', 'Failed'].includes(p.status?.phase ?? ''),
        )
        .reduce((sum, p) => sum + equivalentsOfPod(p as KubePod, policy), 0);
    const running = (await admin.listPodForAllNamespaces({ fieldSelector: 'status.phase=Running' })).items.length;
    say(
      `  ${running} pods Running on ${FLEET.length} KWOK nodes; tenant research holds ${(await held()).toFixed(2)} GPU-equivalents`,
    );
    const batch = stack.client(DEMO_USERS.bob).makeApiClient(BatchV1Api);
    const labels = { team: 'ml', 'cost-center': '4200' };
    await batch.createNamespacedJob({
      namespace: 'vision',
      body: {
        metadata: { name: 'nightly-eval', labels },
        spec: {
          completions: 2,
          parallelism: 2,
          backoffLimit: 0,
          template: {
            metadata: {
              labels,
              annotations: {
                'tessera.io/pool': 'shared-h100',
                'tessera.io/gpu-fraction': '0.5',
                ...lifecycleAnnotations('3s'),
              },
            },
            spec: {
              restartPolicy: 'Never',
              runtimeClassName: 'nvidia',
              containers: [
                {
                  name: 'main',
                  image: 'registry.acme.example/eval:1',
                  resources: { requests: { cpu: '2', memory: '8Gi' } },
                },
              ],
            },
          },
        },
      },
    });
    step('bob starts Job vision/nightly-eval: 2 pods, half an H100 each, kwok.tessera.io/run-for: 3s');
    const jobPods = async (): Promise<V1Pod[]> =>
      (
        await admin.listNamespacedPod({
          namespace: 'vision',
          labelSelector: 'batch.kubernetes.io/job-name=nightly-eval',
        })
      ).items;
    let evalPods: V1Pod[] = [];
    for (let i = 0; i < 150 && !(evalPods.length === 2 && evalPods.every((p) => p.status?.phase === 'Running')); i++) {
      await new Promise((r) => setTimeout(r, 100));
      evalPods = await jobPods();
    }
    for (const p of evalPods) {
      const gpus = (
        JSON.parse(p.metadata?.annotations?.['tessera.io/assignment'] ?? '{"gpus":[]}') as {
          gpus: { index: number; milli: number }[];
        }
      ).gpus
        .map((g) => `GPU ${g.index} (${g.milli}m)`)
        .join(', ');
      step(`${p.metadata!.name} ${p.status?.phase} on ${p.spec?.nodeName ?? '-'} ${gpus}`);
    }
    step(`while it runs, tenant research holds ${(await held()).toFixed(2)} GPU-equivalents`);
    for (let i = 0; i < 150; i++) {
      const job = await batch.readNamespacedJob({ name: 'nightly-eval', namespace: 'vision' });
      if (job.status?.conditions?.some((c) => ['Complete', 'Failed'].includes(c.type) && c.status === 'True')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const job = await batch.readNamespacedJob({ name: 'nightly-eval', namespace: 'vision' });
    const outcome =
      job.status?.conditions?.find((c) => ['Complete', 'Failed'].includes(c.type) && c.status === 'True')?.type ??
      'still running';
    step(
      `Job vision/nightly-eval ${outcome}: ${job.status?.succeeded ?? 0} pods Succeeded; pods that ended hold no GPU share or quota, so research is back to ${(await held()).toFixed(2)}`,
    );

    say();
    step(
      'the security team ships a stricter policy (hot reload): research images must come from registry.acme.example/secure/, runtime class enforced',
    );
    const stricter = POLICY.replace(
      '  rules:\n',
      `  rules:\n    - name: research-secure-registry\n      kind: ImageRegistry\n      action: audit\n      match: { tenants: [research] }\n      params:\n        allowed: ["registry.acme.example/secure/"]\n\n`,
    ).replace(/kind: RuntimeClass\n {6}action: audit/, 'kind: RuntimeClass\n      action: enforce');
    writeFileSync(join(stack.policyDir, 'policy.yaml'), stricter);
    const before = stack.webhook!.policies.status().revision;
    for (let i = 0; i < 100 && stack.webhook!.policies.status().revision === before; i++)
      await new Promise((r) => setTimeout(r, 100));
    step(`policy revision ${before} -> ${stack.webhook!.policies.status().revision}; auditing running pods`);
    const live = (await admin.listPodForAllNamespaces()).items.filter(
      (p) => !['Succeeded', 'Failed'].includes(p.status?.phase ?? ''),
    ) as KubePod[];
    const nsList = (await admin.listNamespace()).items as KubeNamespace[];
    const strict = compilePolicy([{ name: 'policy.yaml', text: stricter }]);
    if (!strict.ok) throw new Error('stricter policy');
    const report = auditPods(
      live.filter((p) => p.metadata?.namespace !== 'kube-system'),
      strict.policy,
      staticClusterView(nsList, live),
    );
    say('DRIFT (tessera audit against the new policy)');
    const lines = formatDrift(report).split('\n');
    const podsAt = lines.indexOf('pods:');
    const shown =
      podsAt < 0
        ? lines
        : [
            ...lines.slice(0, podsAt + 7),
            ...(lines.length > podsAt + 7
              ? [`  ... (${report.drifted.length} drifted pods in all; \`tessera audit\` lists every one)`]
              : []),
          ];
    say(shown.map((l) => `  ${l}`).join('\n'));
  } finally {
    say();
    step('shutting down');
    await stack.stop();
    step('done');
  }
}

await main();
