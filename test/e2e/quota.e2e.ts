// Quota under concurrency on a real API server (issue 20): two webhook replicas behind one Service-like address, and a
// burst of GPU pods (some by a user, some created by the Job controller) in two namespaces of tenant research in the
// same second, far more than its quota. Quota is the contract's: GPU-equivalents over all non-terminated pods (the
// pods stay Pending here: no GPU node, so nothing finishes and every admitted pod keeps holding its share).

import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AdmissionregistrationV1Api,
  BatchV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  type V1Job,
  type V1Pod,
} from '@kubernetes/client-node';
import { pino } from 'pino';
import { compilePolicy } from '../../core/policy/compile.ts';
import { equivalentsOfPod } from '../../core/pools/equivalents.ts';
import { isTerminated } from '../../core/pod-lifecycle.ts';
import type { KubePod } from '../../core/kube-objects.ts';
import { parseReservations, RESERVATIONS_CONFIGMAP } from '../../core/admission/quota-reservations.ts';
import { startWebhook } from '../../webhook/server.ts';
import { startServiceProxy } from '../soak/service-proxy.ts';
import { EXTENDER_USER, registerWebhooks, startStack, WEBHOOK_USER } from './stack.ts';
import { apiErrorMessage, until } from '../fixtures/waiting.ts';

const QUOTA = 3;
const POLICY = readFileSync(new URL('../../../shared/examples/policy.yaml', import.meta.url), 'utf8').replace(
  'quota: { gpus: 12 }',
  `quota: { gpus: ${QUOTA} }`,
);
const LABELS = { team: 'vision', 'cost-center': '1234' };
const NAMESPACES = ['vision', 'nlp'];

const podSpec = () => ({
  restartPolicy: 'Never' as const,
  containers: [{ name: 'main', image: 'registry.example/train:1' }],
});
const gpuPod = (name: string, fraction: string): V1Pod => ({
  metadata: { name, labels: LABELS, annotations: { 'tessera.io/gpu-fraction': fraction } },
  spec: podSpec(),
});
const gpuJob = (name: string, fraction: string, parallelism: number): V1Job => ({
  metadata: { name, labels: LABELS },
  spec: {
    completions: parallelism,
    parallelism,
    backoffLimit: 0,
    template: {
      metadata: { labels: LABELS, annotations: { 'tessera.io/gpu-fraction': fraction } },
      spec: podSpec(),
    },
  },
});

t.test('a burst across two namespaces through two webhook replicas ends at or below the quota', async (t) => {
  const stack = await startStack({ policy: POLICY, progress: (l) => t.comment(l) });
  t.teardown(() => stack.stop());
  const policy = compilePolicy([{ name: 'policy.yaml', text: POLICY }]);
  if (!policy.ok) throw new Error('policy');
  const adminKc = stack.client('admin');
  const admin = adminKc.makeApiClient(CoreV1Api);

  // A second replica with the same certificate, and one address in front of both (as a Service would be).
  const second = await startWebhook({
    policyDir: stack.policyDir,
    host: '127.0.0.1',
    port: 0,
    tls: { certFile: join(stack.cluster.dir, 'webhook.crt'), keyFile: join(stack.cluster.dir, 'webhook.key') },
    kubeconfig: stack.client(WEBHOOK_USER),
    systemUsers: [EXTENDER_USER, WEBHOOK_USER],
    log: pino({ level: 'silent' }),
  });
  t.teardown(() => second.close());
  await until('the second replica is ready', async () => second.ready(), 60_000);
  const replicas = [
    { name: 'webhook-a', port: stack.webhookPort, readyUrl: `https://127.0.0.1:${stack.webhookPort}/readyz` },
    { name: 'webhook-b', port: second.port, readyUrl: `https://127.0.0.1:${second.port}/readyz` },
  ];
  const proxy = await startServiceProxy(() => replicas);
  t.teardown(() => proxy.close());
  const registrations = adminKc.makeApiClient(AdmissionregistrationV1Api);
  await registrations.deleteMutatingWebhookConfiguration({ name: 'tessera' });
  await registrations.deleteValidatingWebhookConfiguration({ name: 'tessera' });
  await registerWebhooks(adminKc, stack.ca.certPem, `https://127.0.0.1:${proxy.port}`);

  const rbac = adminKc.makeApiClient(RbacAuthorizationV1Api);
  for (const ns of NAMESPACES) {
    await stack
      .client('alice@acme.example')
      .makeApiClient(CoreV1Api)
      .createNamespace({ body: { metadata: { name: ns, labels: { 'tessera.io/tenant': 'research' } } } });
    await admin.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'default' } } });
    // A Role of its own: the aggregated `edit` ClusterRole stays empty without the aggregation controller.
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: 'tenant-user' },
        rules: [
          { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
          { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'bob-edit' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'tenant-user' },
        subjects: [{ kind: 'User', name: 'bob@acme.example', apiGroup: 'rbac.authorization.k8s.io' }],
      },
    });
  }
  const bobKc = stack.client('bob@acme.example');
  const bob = bobKc.makeApiClient(CoreV1Api);
  const bobJobs = bobKc.makeApiClient(BatchV1Api);
  await until(
    'the webhooks answer through the proxy',
    async () => {
      try {
        await bob.createNamespacedPod({ namespace: 'vision', body: gpuPod('probe', '0.05'), dryRun: 'All' });
        return true;
      } catch (e) {
        throw new Error(apiErrorMessage(e));
      }
    },
    60_000,
  );

  // A dry run is judged but reserves nothing.
  await bob.createNamespacedPod({ namespace: 'vision', body: gpuPod('dry', '0.5'), dryRun: 'All' });
  const before = await admin
    .readNamespacedConfigMap({ name: RESERVATIONS_CONFIGMAP, namespace: 'tessera-system' })
    .catch(() => null);
  t.same(parseReservations(before?.data), [], 'dry runs reserved nothing');

  // The burst: 16 pods of 0.5 by bob and 4 Jobs of 2 x 0.5, at once, in both namespaces: 12 GPU-equivalents asked, 3
  // allowed.
  const creates: Promise<unknown>[] = [];
  for (let i = 0; i < 16; i++)
    creates.push(bob.createNamespacedPod({ namespace: NAMESPACES[i % 2]!, body: gpuPod(`burst-${i}`, '0.5') }));
  for (let i = 0; i < 4; i++)
    creates.push(bobJobs.createNamespacedJob({ namespace: NAMESPACES[i % 2]!, body: gpuJob(`job-${i}`, '0.5', 2) }));
  const results = await Promise.allSettled(creates);
  const refusals = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  const bodies = refusals.map((r) => String((r.reason as { body?: unknown }).body ?? r.reason));
  t.ok(
    bodies.every((b) => /tessera\/quota/.test(b)),
    `every refusal is a quota denial (${refusals.length}): ${bodies.find((b) => !/tessera\/quota/.test(b)) ?? 'ok'}`,
  );
  t.equal(results.filter((r, i) => i >= 16 && r.status === 'fulfilled').length, 4, 'the Jobs themselves are admitted');

  // Let the Job controller create (and be refused) its pods for a while; then count by the contract.
  const held = async () => {
    let total = 0;
    let pods = 0;
    for (const ns of NAMESPACES) {
      for (const p of (await admin.listNamespacedPod({ namespace: ns })).items as KubePod[]) {
        if (isTerminated(p)) continue;
        total += equivalentsOfPod(p, policy.policy);
        pods++;
      }
    }
    return { total, pods };
  };
  await new Promise((r) => setTimeout(r, 8_000));
  const end = await held();
  t.comment(`tenant research holds ${end.total} GPU-equivalents in ${end.pods} non-terminated pods (quota ${QUOTA})`);
  t.ok(end.total <= QUOTA + 1e-9, `at or below the quota: ${end.total} <= ${QUOTA}`);
  t.ok(end.total >= QUOTA - 0.5, 'and the quota is used: the burst asked for four times as much');
  const metrics = await Promise.all(
    [stack.webhook!, second].map(async (w) => {
      const text = await w.metrics.registry.metrics();
      return {
        reserved: Number(/quota_reservations_total\{outcome="reserved"\} (\d+)/.exec(text)?.[1] ?? 0),
        conflicts: Number(/quota_reservation_conflicts_total (\d+)/.exec(text)?.[1] ?? 0),
      };
    }),
  );
  t.comment(`replicas: ${JSON.stringify(metrics)} (reservations and conflicts per replica)`);
  const cm = await admin.readNamespacedConfigMap({ name: RESERVATIONS_CONFIGMAP, namespace: 'tessera-system' });
  const reserved = parseReservations(cm.data);
  // One per admitted pod, unless a later write found it settled (shown by the informer and 10 s old).
  t.ok(reserved.length > 0 && reserved.length <= end.pods, `reservations of admitted pods (${reserved.length})`);
  t.ok(
    reserved.every((r) => r.tenant === 'research' && r.equivalents === 0.5),
    'reservations of tenant research, 0.5 each',
  );
});
