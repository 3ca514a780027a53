// Quota under concurrency over the wire (issue 20): two webhook replicas against one API server on loopback, real
// AdmissionReviews for pods that the API server has already given a UID (validating admission sees it). The
// reservations live in a ConfigMap written with resourceVersion preconditions.

import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startWebhook, type RunningWebhook } from '../../webhook/server.ts';
import { EXAMPLE_POLICY_TEXT, BOB, NAMESPACES, examplePolicy } from '../fixtures/admission.ts';
import { mutatePod } from '../../core/admission/mutate.ts';
import { eventually, FakeApiServer } from '../fixtures/fake-apiserver.ts';
import { pod } from '../fixtures/pods.ts';
import type { KubePod } from '../../core/kube-objects.ts';
import { parseReservations, RESERVATIONS_CONFIGMAP } from '../../core/admission/quota-reservations.ts';

const log = pino({ level: 'silent' });
// Lenient: on a loaded machine a loopback answer can take a second.
const PROBE = { intervalMs: 200, timeoutMs: 3000, failureThreshold: 3 };
const CM = `tessera-system/${RESERVATIONS_CONFIGMAP}`;
const POLICY = examplePolicy();

/** A GPU pod as validating admission sees it: mutated, with the UID the API server assigned. */
function gpuPod(name: string, namespace: string, milli: number): KubePod {
  const asked = pod(name)
    .ns(namespace)
    .uid(`uid-${name}`)
    .annotate('tessera.io/pool', 'shared-h100')
    .label('team', 'vision')
    .label('cost-center', '1234')
    .gpuMilli(milli)
    .build();
  return mutatePod(asked, 'research', POLICY).pod;
}

const review = (p: KubePod, dryRun = false) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: `review-${p.metadata!.name}`,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: p.metadata!.namespace,
    name: p.metadata!.name,
    operation: 'CREATE',
    userInfo: BOB,
    object: p,
    dryRun,
  },
});

async function validate(hook: RunningWebhook, p: KubePod, dryRun = false): Promise<any> {
  const res = await fetch(`${hook.url}/validate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(review(p, dryRun)),
  });
  return ((await res.json()) as { response: any }).response;
}

async function setup(t: { teardown(fn: () => unknown): void }, running: KubePod[]) {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-quota-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'policy.yaml'), EXAMPLE_POLICY_TEXT);
  const api = new FakeApiServer();
  for (const n of NAMESPACES) api.put('namespaces', n);
  for (const p of running) api.put('pods', p);
  await api.start();
  t.teardown(() => api.stop());
  const replicas: RunningWebhook[] = [];
  for (let i = 0; i < 2; i++) {
    const hook = await startWebhook({
      policyDir: dir,
      host: '127.0.0.1',
      port: 0,
      kubeconfig: api.kubeconfig(),
      systemUsers: [],
      apiProbe: PROBE,
      log,
    });
    t.teardown(() => hook.close());
    replicas.push(hook);
  }
  await eventually('both replicas ready', () => replicas.every((r) => r.ready()));
  return { api, replicas };
}

const running = (name: string, namespace: string, milli: number): KubePod => {
  const p = gpuPod(name, namespace, milli);
  p.spec!.nodeName = 'h1';
  p.status = { phase: 'Running' };
  return p;
};

t.test('a burst across two namespaces through two replicas ends at or below the quota', async (t) => {
  // research (quota 12) runs 11 GPU-equivalents; 16 pods of 0.25 arrive at once: 4 fit.
  const base = Array.from({ length: 11 }, (_, i) => running(`r${i}`, i % 2 ? 'research-a' : 'research-b', 1000));
  const { api, replicas } = await setup(t, base);
  const burst = Array.from({ length: 16 }, (_, i) => gpuPod(`b${i}`, i % 2 ? 'research-a' : 'research-b', 250));
  const answers = await Promise.all(burst.map((p, i) => validate(replicas[i % 2]!, p)));
  const admitted = answers.filter((a) => a.allowed).length;
  t.equal(admitted, 4, 'exactly what the quota holds');
  for (const a of answers.filter((x) => !x.allowed))
    t.match(a.status, { code: 403, message: /\[tessera\/quota\] tenant research has a quota of 12/ });
  const stored = parseReservations(api.configMaps.get(CM)?.data);
  t.equal(stored.length, 4, 'one reservation per admitted pod');
  t.same(
    stored.map((r) => r.equivalents),
    [0.25, 0.25, 0.25, 0.25],
  );
  const conflicts = await Promise.all(
    replicas.map(async (r) =>
      /tessera_webhook_quota_reservation_conflicts_total (\d+)/.exec(await r.metrics.registry.metrics()),
    ),
  );
  t.comment(`conflicts: ${conflicts.map((m) => m?.[1]).join(', ')}`);

  // The informer catches up: the admitted pods now show as pods, and are not counted twice.
  for (const p of burst.filter((_, i) => answers[i].allowed)) api.put('pods', p);
  await new Promise((r) => setTimeout(r, 200));
  const more = await validate(replicas[0]!, gpuPod('late', 'research-a', 250));
  t.equal(more.allowed, false, '12 held: nothing more fits');
  api.remove('pods', 'r0', 'research-b');
  await eventually(
    'the freed GPU is seen',
    async () => (await validate(replicas[1]!, gpuPod('next', 'research-a', 1000))).allowed,
  );
});

t.test('dry-run reserves nothing; an unavailable API server denies with the reason (fail closed)', async (t) => {
  const { api, replicas } = await setup(t, []);
  const dry = await validate(replicas[0]!, gpuPod('dry', 'research-a', 500), true);
  t.equal(dry.allowed, true);
  t.same(parseReservations(api.configMaps.get(CM)?.data), [], 'no reservation for a dry run');
  api.configMapsUnavailable = true;
  const down = await validate(replicas[1]!, gpuPod('down', 'research-a', 500));
  t.match(down, {
    allowed: false,
    status: {
      code: 503,
      message: /could not reserve GPU quota for tenant research .*etcdserver: request timed out.*fail closed/,
    },
  });
  api.configMapsUnavailable = false;
  t.equal((await validate(replicas[1]!, gpuPod('up', 'research-a', 500))).allowed, true, 'and admits once it is back');
  // A CPU pod in a tenant namespace, and a pod of a tenant without a quota change nothing.
  const cpu = mutatePod(pod('cpu').ns('research-a').uid('u-cpu').cpu('1').build(), 'research', POLICY).pod;
  t.equal((await validate(replicas[0]!, cpu)).allowed, true);
  t.equal(parseReservations(api.configMaps.get(CM)?.data).length, 1);
});
