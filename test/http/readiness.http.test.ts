// Readiness means "caches synced from a reachable API server", and it drops when that server is lost. While it is
// lost the webhook denies what needs the cluster's state with the true reason (not "no tenant label"), and the
// extender's verbs answer an error with the reason. Against a fake API server on loopback that can go away, hang or
// refuse, and come back.

import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startExtender } from '../../extender/server.ts';
import { startWebhook } from '../../webhook/server.ts';
import { EXAMPLE_POLICY_TEXT, BOB, NAMESPACES } from '../fixtures/admission.ts';
import { closedPort, eventually, FakeApiServer } from '../fixtures/fake-apiserver.ts';
import { pod } from '../fixtures/pods.ts';

const log = pino({ level: 'silent' });
const PROBE = { intervalMs: 100, timeoutMs: 300, failureThreshold: 2 };

function policyDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-readiness-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'policy.yaml'), EXAMPLE_POLICY_TEXT);
  return dir;
}

async function get(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

async function post(url: string, body: unknown): Promise<any> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return res.json();
}

const review = (namespace: string, name = 'train') => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: `uid-${name}`,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace,
    operation: 'CREATE',
    userInfo: BOB,
    object: pod(name).ns(namespace).annotate('tessera.io/gpu-fraction', '0.5').build(),
  },
});

const ready = async (url: string) => (await get(`${url}/readyz`)).status === 200;

t.test('webhook: an unreachable API server is not ready and admission says so', async (t) => {
  const api = new FakeApiServer();
  api.port = await closedPort();
  const hook = await startWebhook({
    policyDir: policyDir(t),
    host: '127.0.0.1',
    port: 0,
    kubeconfig: api.kubeconfig(),
    systemUsers: [],
    apiProbe: PROBE,
    log,
  });
  t.teardown(() => hook.close());
  await eventually('the first probe fails', async () =>
    /ECONNREFUSED/.test((await get(`${hook.url}/readyz`)).body.reason),
  );
  const r = await get(`${hook.url}/readyz`);
  t.equal(r.status, 503);
  t.match(r.body.reason, /^Tessera cannot reach the Kubernetes API at http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  t.equal(hook.ready(), false);
  for (const stage of ['mutate', 'validate']) {
    const answer = (await post(`${hook.url}/${stage}`, review('research-a'))).response;
    t.equal(answer.allowed, false, `${stage} fails closed`);
    t.equal(answer.status.code, 503);
    t.match(answer.status.message, /^Tessera cannot reach the Kubernetes API .*ECONNREFUSED.*; retry/, stage);
    t.notMatch(answer.status.message, /tenant label/, 'not the wrong reason');
  }
});

t.test('webhook: ready only once synced; lost when the API server goes; back when it returns, re-listed', async (t) => {
  const api = new FakeApiServer();
  for (const n of NAMESPACES) api.put('namespaces', n);
  await api.start();
  t.teardown(() => api.stop());
  const hook = await startWebhook({
    policyDir: policyDir(t),
    host: '127.0.0.1',
    port: 0,
    kubeconfig: api.kubeconfig(),
    systemUsers: [],
    apiProbe: PROBE,
    log,
  });
  t.teardown(() => hook.close());
  await eventually('ready', () => ready(hook.url));
  t.match((await get(`${hook.url}/readyz`)).body.reason, /policy revision \w+ in force/);
  t.equal((await post(`${hook.url}/mutate`, review('research-a'))).response.allowed, true, 'admits while synced');

  await api.stop();
  await eventually('not ready once the API server is gone', async () => !(await ready(hook.url)), 3000);
  t.equal(hook.ready(), false);
  const lost = (await post(`${hook.url}/mutate`, review('research-a'))).response;
  t.equal(lost.allowed, false);
  t.match(
    lost.status.message,
    /^Tessera (cannot reach the Kubernetes API|has not synced its (namespaces|pods|deviceclasses|resourceclaims|resourceclaimtemplates) cache)/,
  );

  // Changes made while Tessera could not see them are there after the re-list.
  api.put('namespaces', { metadata: { name: 'late', labels: { 'tessera.io/tenant': 'research' } } });
  await api.start();
  await eventually('ready again', () => ready(hook.url));
  const late = (await post(`${hook.url}/mutate`, review('late', 'late'))).response;
  t.equal(late.allowed, true, 'a namespace created during the outage is known after the re-list');
  t.ok(api.requests.filter((r) => r === 'GET /api/v1/namespaces').length >= 2, 'namespaces were listed again');
});

t.test('webhook: an API server that stops answering is lost after the probe threshold', async (t) => {
  const api = new FakeApiServer();
  for (const n of NAMESPACES) api.put('namespaces', n);
  await api.start();
  t.teardown(() => api.stop());
  const hook = await startWebhook({
    policyDir: policyDir(t),
    host: '127.0.0.1',
    port: 0,
    kubeconfig: api.kubeconfig(),
    systemUsers: [],
    apiProbe: PROBE,
    log,
  });
  t.teardown(() => hook.close());
  await eventually('ready', () => ready(hook.url));
  api.hangReadyz = true; // watches stay open and silent: only the probe can tell
  await eventually('not ready', async () => !(await ready(hook.url)), 3000);
  t.match(
    (await get(`${hook.url}/readyz`)).body.reason,
    /cannot reach the Kubernetes API .*GET \/readyz: no answer within 0.3 s/,
  );
  api.hangReadyz = false;
  await eventually('ready again', () => ready(hook.url));
  t.pass('recovered');
});

t.test('webhook: a cache the API server refuses (RBAC) keeps it unready with that reason', async (t) => {
  const api = new FakeApiServer();
  api.forbidden.add('pods');
  await api.start();
  t.teardown(() => api.stop());
  const hook = await startWebhook({
    policyDir: policyDir(t),
    host: '127.0.0.1',
    port: 0,
    kubeconfig: api.kubeconfig(),
    systemUsers: [],
    apiProbe: PROBE,
    log,
  });
  t.teardown(() => hook.close());
  await eventually('the list fails', async () => /HTTP 403/.test((await get(`${hook.url}/readyz`)).body.reason));
  t.match((await get(`${hook.url}/readyz`)).body, {
    ready: false,
    reason: /has not synced its pods cache from the Kubernetes API \(list failed: HTTP 403: pods is forbidden/,
  });
  api.forbidden.delete('pods');
  await eventually('ready once allowed', () => ready(hook.url), 15_000);
  t.pass('recovered');
});

t.test('webhook: a bad start leaves nothing running behind', async (t) => {
  const watchers = () => process.getActiveResourcesInfo().filter((r) => r === 'FSEventWrap').length;
  const before = watchers();
  await t.rejects(
    startWebhook({ policyDir: policyDir(t), port: 0, systemUsers: [], log }),
    /needs a kubeconfig or a view/,
  );
  await t.rejects(
    startWebhook({
      policyDir: policyDir(t),
      host: '127.0.0.1',
      port: 0,
      tls: { certFile: '/nonexistent/tls.crt', keyFile: '/nonexistent/tls.key' },
      kubeconfig: new FakeApiServer().kubeconfig(),
      systemUsers: [],
      log,
    }),
    /cannot read the serving certificate .*\/nonexistent\/tls.crt/,
  );
  t.equal(watchers(), before, 'no policy directory watcher left running');
});

t.test('extender: verbs answer the reason while the API server is lost; not ready after close', async (t) => {
  const api = new FakeApiServer();
  for (const n of NAMESPACES) api.put('namespaces', n);
  await api.start();
  t.teardown(() => api.stop());
  const ext = await startExtender({
    kubeconfig: api.kubeconfig(),
    policyDir: policyDir(t),
    host: '127.0.0.1',
    port: 0,
    apiProbe: PROBE,
    log,
  });
  t.teardown(() => ext.close());
  await eventually('ready', () => ext.ready());
  const args = { Pod: review('research-a').request.object, Nodes: null, NodeNames: [] };
  t.equal((await post(`${ext.url}/filter`, args)).Error, '', 'filter serves while synced');

  await api.stop();
  await eventually('not ready', () => !ext.ready(), 3000);
  const filter = await post(`${ext.url}/filter`, args);
  t.match(
    filter.Error,
    /^Tessera extender not serving: (cannot reach the Kubernetes API|has not synced its \w+ cache)/,
  );
  const bind = await post(`${ext.url}/bind`, {
    PodName: 'train',
    PodNamespace: 'research-a',
    PodUID: 'u1',
    Node: 'n1',
  });
  t.match(bind.Error, /^Tessera extender not serving: /);
  t.match((await get(`${ext.url.replace(/\/$/, '')}/readyz`)).body, { ready: false, reason: /Kubernetes API/ });

  await api.start();
  await eventually('ready again', () => ext.ready());
  await ext.close();
  t.equal(ext.ready(), false, 'a closed extender is not ready');
});
