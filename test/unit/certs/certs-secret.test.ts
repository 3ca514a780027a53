// `tessera certs rotate --secret`: the certificate state in two Secrets, the webhook configurations' caBundle and the
// scheduler's restart, against a small in-process stand-in for the API server that records every request (the real
// API server and the chart's RBAC are exercised in test/e2e/helm.e2e.ts).

import t, { type Test } from 'tap';
import { X509Certificate } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { BUNDLE_ANNOTATION, runWithSecrets, sha256, type SecretRun } from '../../../cli/certs-kube.ts';
import { certsCommand } from '../../../cli/certs.ts';
import { UsageError } from '../../../cli/help.ts';
import { DEFAULT_ROTATION, splitPem, trusted } from '../../../certs/rotation.ts';

type Obj = Record<string, any> & { metadata: { name: string; resourceVersion?: string; [k: string]: any } };

/** Secrets, webhook configurations and Deployments, with resourceVersions, and switches to fail a write. */
class FakeApi {
  readonly objects = new Map<string, Obj>();
  readonly log: string[] = [];
  /** Requests (METHOD path, a create as POST path/name) answered with this status instead. */
  readonly failures = new Map<string, number>();
  private rv = 0;
  private server = createServer((req, res) => void this.handle(req, res));
  port = 0;

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }
  async stop(): Promise<void> {
    await new Promise<void>((r) => this.server.close(() => r()));
  }
  kubeconfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: `http://127.0.0.1:${this.port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
      currentContext: 'fake',
    });
    return kc;
  }
  put(path: string, obj: Obj, created = new Date()): void {
    this.objects.set(path, {
      ...structuredClone(obj),
      metadata: { ...obj.metadata, resourceVersion: String(++this.rv), creationTimestamp: created.toISOString() },
    });
  }
  writes(): string[] {
    return this.log.filter((l) => !l.startsWith('GET'));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
    const path = req.url!.split('?')[0]!;
    const line = `${req.method} ${path}`;
    this.log.push(req.method === 'PATCH' ? `${line} ${req.headers['content-type']}` : line);
    const send = (status: number, obj: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    const status = (code: number, message: string) =>
      send(code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, message });
    const failure = this.failures.get(req.method === 'POST' ? `${line}/${body.metadata.name}` : line);
    if (failure !== undefined) return status(failure, `injected ${failure}`);
    const existing = this.objects.get(path);
    if (req.method === 'GET') return existing ? send(200, existing) : status(404, `${path} not found`);
    if (req.method === 'POST') {
      const target = `${path}/${body.metadata.name}`;
      if (this.objects.has(target)) return status(409, 'already exists');
      this.put(target, body);
      return send(201, this.objects.get(target));
    }
    if (!existing) return status(404, `${path} not found`);
    if (req.method === 'PUT') {
      if (body.metadata.resourceVersion !== existing.metadata.resourceVersion)
        return status(409, 'the object has been modified; please apply your changes to the latest version');
      this.put(path, body, new Date(existing.metadata.creationTimestamp));
      return send(200, this.objects.get(path));
    }
    if (req.method === 'PATCH') {
      const merged = structuredClone(existing);
      if (req.headers['content-type'] === 'application/strategic-merge-patch+json' && body.webhooks) {
        // admissionregistration's webhooks list merges on the webhook's name.
        for (const w of body.webhooks) {
          const target = merged.webhooks.find((x: { name: string }) => x.name === w.name);
          target.clientConfig = { ...target.clientConfig, ...w.clientConfig };
        }
      } else if (req.headers['content-type'] === 'application/merge-patch+json') {
        const merge = (a: any, b: any): any => {
          for (const [k, v] of Object.entries(b))
            a[k] = v && typeof v === 'object' && !Array.isArray(v) ? merge(a[k] ?? {}, v) : v;
          return a;
        };
        merge(merged, body);
      } else return status(415, `unsupported patch ${req.headers['content-type']}`);
      this.put(path, merged, new Date(existing.metadata.creationTimestamp));
      return send(200, this.objects.get(path));
    }
    status(405, 'method not allowed');
  }
}

const NS = 'tessera-system';
const SECRETS = `/api/v1/namespaces/${NS}/secrets`;
const MUTATING = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/tessera';
const VALIDATING = '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/tessera';
const SCHEDULER = `/apis/apps/v1/namespaces/${NS}/deployments/tessera-scheduler`;
const DAY = 86_400_000;
const T0 = new Date('2030-01-01T00:00:00Z');

function run(over: Partial<SecretRun> = {}): SecretRun {
  return {
    command: 'rotate',
    namespace: NS,
    secret: 'tessera-extender-tls',
    caSecret: 'tessera-extender-ca',
    policy: {
      ...DEFAULT_ROTATION,
      commonName: 'tessera-extender',
      dnsNames: ['tessera-extender.tessera-system.svc'],
      ips: [],
    },
    now: T0,
    issueIfMissing: true,
    webhookConfigurations: ['tessera'],
    restartDeployments: ['tessera-scheduler'],
    ...over,
  };
}

const data = (api: FakeApi, name: string): Record<string, string> =>
  Object.fromEntries(
    Object.entries((api.objects.get(`${SECRETS}/${name}`)?.data ?? {}) as Record<string, string>).map(([k, v]) => [
      k,
      Buffer.from(v, 'base64').toString(),
    ]),
  );

function webhookConfig(kind: string, names: string[]): Obj {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind,
    metadata: { name: 'tessera' },
    webhooks: names.map((name) => ({
      name,
      clientConfig: { service: { name: 'tessera-webhook', namespace: NS, path: '/x' } },
    })),
  };
}
const scheduler = (): Obj => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'tessera-scheduler', namespace: NS },
  spec: { template: { metadata: { labels: { app: 's' } } } },
});
const recorded = (api: FakeApi) => api.objects.get(SCHEDULER)!.spec.template.metadata.annotations?.[BUNDLE_ANNOTATION];

async function fake(t: Test): Promise<FakeApi> {
  const api = new FakeApi();
  await api.start();
  t.teardown(() => api.stop());
  return api;
}

t.test('issue into Secrets, then keep the webhooks and the scheduler trusting the bundle', async (t) => {
  const api = await fake(t);
  const kc = api.kubeconfig();
  await t.rejects(
    runWithSecrets(kc, run({ issueIfMissing: false })),
    /Secret tessera-system\/tessera-extender-tls holds no certificates; use "tessera certs issue", or rotate --issue-if-missing/,
  );
  t.same(api.writes(), [], 'nothing written');

  const lines = await runWithSecrets(kc, run());
  t.match(lines[0], /^issued a CA and a serving certificate for tessera-extender.tessera-system.svc/);
  t.match(lines.slice(1), [
    /MutatingWebhookConfiguration tessera does not exist \(yet\)/,
    /ValidatingWebhookConfiguration tessera does not exist \(yet\)/,
    /Deployment tessera-system\/tessera-scheduler does not exist \(yet\)/,
  ]);
  t.same(
    api.writes(),
    [`POST ${SECRETS}`, `POST ${SECRETS}`],
    'two creates: the CA Secret first (alone it is issued over; a serving Secret alone could not be rotated)',
  );
  t.equal(api.objects.get(`${SECRETS}/tessera-extender-ca`)!.metadata.resourceVersion, '1', 'CA Secret first');
  const served = data(api, 'tessera-extender-tls');
  const ca = data(api, 'tessera-extender-ca');
  t.same(Object.keys(served).sort(), ['ca.crt', 'tls.crt', 'tls.key'], 'the served Secret: what servers mount');
  t.same(Object.keys(ca).sort(), ['ca-signing.crt', 'ca.key'], 'the CA Secret: what rotation needs');
  t.equal(api.objects.get(`${SECRETS}/tessera-extender-tls`)!.type, 'kubernetes.io/tls');
  t.notMatch(JSON.stringify(served), /ca\.key|ca-signing/, 'servers never get the CA key');
  t.ok(trusted(served['tls.crt']!, splitPem(served['ca.crt']!), T0), 'the leaf is trusted by the bundle');
  t.equal(new X509Certificate(served['tls.crt']!).subjectAltName, 'DNS:tessera-extender.tessera-system.svc');

  // The release's objects appear (Helm applies them after its pre-install hook); the post-install run sets the
  // caBundle of every webhook, and leaves the scheduler alone: it was created after its CA, so it mounted it.
  api.put(MUTATING, webhookConfig('MutatingWebhookConfiguration', ['mutate.tessera.io']));
  api.put(VALIDATING, webhookConfig('ValidatingWebhookConfiguration', ['validate.tessera.io', 'other.tessera.io']));
  api.put(SCHEDULER, scheduler(), new Date(T0.getTime() + 60_000));
  api.log.length = 0;
  const after = await runWithSecrets(kc, run({ now: new Date(T0.getTime() + 120_000) }));
  t.same(after, [
    'nothing to rotate',
    'set the caBundle of MutatingWebhookConfiguration tessera (mutate.tessera.io)',
    'set the caBundle of ValidatingWebhookConfiguration tessera (validate.tessera.io, other.tessera.io)',
  ]);
  t.same(api.writes(), [
    `PATCH ${MUTATING} application/strategic-merge-patch+json`,
    `PATCH ${VALIDATING} application/strategic-merge-patch+json`,
  ]);
  const bundle = Buffer.from(served['ca.crt']!).toString('base64');
  for (const path of [MUTATING, VALIDATING])
    for (const w of api.objects.get(path)!.webhooks) {
      t.equal(w.clientConfig.caBundle, bundle, `${w.name}: caBundle`);
      t.equal(w.clientConfig.service.path, '/x', `${w.name}: the rest of clientConfig kept`);
    }
  t.equal(recorded(api), undefined, 'the scheduler is not restarted');

  api.log.length = 0;
  t.same(await runWithSecrets(kc, run({ now: new Date(T0.getTime() + DAY) })), ['nothing to rotate']);
  t.same(api.writes(), [], 'a run with nothing to do writes nothing');

  // Sixty-one days on, the leaf is renewed under the same CA: the served Secret alone is updated.
  api.log.length = 0;
  const renewed = await runWithSecrets(kc, run({ now: new Date(T0.getTime() + 61 * DAY) }));
  t.same(renewed, ['renewed the serving certificate']);
  t.same(api.writes(), [`PUT ${SECRETS}/tessera-extender-tls`, `PUT ${SECRETS}/tessera-extender-ca`]);
  t.not(data(api, 'tessera-extender-tls')['tls.crt'], served['tls.crt']);
  t.equal(data(api, 'tessera-extender-tls')['ca.crt'], served['ca.crt'], 'same bundle');
});

t.test('a CA rollover reaches the webhooks and restarts the scheduler, once', async (t) => {
  const api = await fake(t);
  const kc = api.kubeconfig();
  api.put(MUTATING, webhookConfig('MutatingWebhookConfiguration', ['mutate.tessera.io']));
  api.put(VALIDATING, webhookConfig('ValidatingWebhookConfiguration', ['validate.tessera.io']));
  await runWithSecrets(kc, run());
  api.put(SCHEDULER, scheduler(), new Date(T0.getTime() + 60_000));
  const before = data(api, 'tessera-extender-tls')['ca.crt']!;

  const introduce = new Date(T0.getTime() + 9.1 * 365 * DAY);
  api.log.length = 0;
  const lines = await runWithSecrets(kc, run({ now: introduce }));
  t.match(lines, [/introduced a new CA/, /renewed the serving certificate/]);
  t.ok(lines.includes('set the caBundle of MutatingWebhookConfiguration tessera (mutate.tessera.io)'), 'caBundle');
  t.match(lines.at(-1), /restarted Deployment tessera-system\/tessera-scheduler/);
  t.same(api.writes().slice(0, 2), [`PUT ${SECRETS}/tessera-extender-tls`, `PUT ${SECRETS}/tessera-extender-ca`]);
  const bundle = data(api, 'tessera-extender-tls')['ca.crt']!;
  t.equal(splitPem(bundle).length, 2, 'both CAs in the bundle');
  t.ok(bundle.startsWith(before), 'the old CA first');
  t.same(Object.keys(data(api, 'tessera-extender-ca')).sort(), [
    'ca-signing.crt',
    'ca.key',
    'next-ca.crt',
    'next-ca.key',
  ]);
  t.equal(recorded(api), sha256(bundle), 'the pod template records the bundle');
  t.equal(Buffer.from(api.objects.get(MUTATING)!.webhooks[0].clientConfig.caBundle, 'base64').toString(), bundle);

  api.log.length = 0;
  await runWithSecrets(kc, run({ now: new Date(introduce.getTime() + DAY) }));
  t.same(api.writes(), [], 'the next day: nothing to write, no second restart');

  const switched = await runWithSecrets(kc, run({ now: new Date(introduce.getTime() + 8 * DAY) }));
  t.match(switched, [/switched to the new CA/]);
  const after = data(api, 'tessera-extender-tls');
  t.ok(trusted(after['tls.crt']!, [splitPem(bundle)[1]!], new Date(introduce.getTime() + 8 * DAY)), 'signed by it');
  t.equal(recorded(api), sha256(bundle), 'the bundle did not change: no restart');
});

t.test('a scheduler older than its CA is restarted even without a record', async (t) => {
  const api = await fake(t);
  api.put(SCHEDULER, scheduler(), new Date(T0.getTime() - DAY));
  await runWithSecrets(api.kubeconfig(), run());
  t.equal(recorded(api), sha256(data(api, 'tessera-extender-tls')['ca.crt']!));
});

t.test('what it will not do: overwrite, guess, or lose a concurrent change', async (t) => {
  const api = await fake(t);
  const kc = api.kubeconfig();
  await runWithSecrets(kc, run({ webhookConfigurations: [], restartDeployments: [] }));
  await t.rejects(
    runWithSecrets(kc, run({ command: 'issue' })),
    /already holds certificates; use "tessera certs rotate"/,
  );

  // A serving certificate made elsewhere (tessera certs issue on a laptop, cert-manager) without its CA's Secret.
  api.objects.delete(`${SECRETS}/tessera-extender-ca`);
  api.log.length = 0;
  await t.rejects(
    runWithSecrets(kc, run()),
    /do not hold a state Tessera can rotate \(incomplete certificate state: ca-signing.crt, ca.key missing\).*delete tessera-extender-tls, or create tessera-extender-ca/,
  );
  t.same(api.writes(), [], 'and writes nothing');

  // Another run updated the Secret after this one read it: the update is refused, not lost.
  const fresh = await fake(t);
  await runWithSecrets(fresh.kubeconfig(), run({ webhookConfigurations: [], restartDeployments: [] }));
  fresh.failures.set(`PUT ${SECRETS}/tessera-extender-tls`, 409);
  await t.rejects(
    runWithSecrets(fresh.kubeconfig(), run({ now: new Date(T0.getTime() + 61 * DAY) })),
    /cannot update Secret tessera-system\/tessera-extender-tls: HTTP 409: injected 409 \(it changed while this run read it: another run\? run again\)/,
  );
  fresh.failures.set(`GET ${SECRETS}/tessera-extender-tls`, 403);
  await t.rejects(
    runWithSecrets(fresh.kubeconfig(), run()),
    /cannot read Secret tessera-system\/tessera-extender-tls: HTTP 403: injected 403 \(the service account lacks this permission/,
  );
});

t.test('a run that stops half-way leaves a state the next run completes', async (t) => {
  // Issue: the CA Secret was created, the served one was not.
  const api = await fake(t);
  const kc = api.kubeconfig();
  api.failures.set(`POST ${SECRETS}/tessera-extender-tls`, 500);
  await t.rejects(
    runWithSecrets(kc, run({ webhookConfigurations: [], restartDeployments: [] })),
    /cannot create Secret tessera-system\/tessera-extender-tls: HTTP 500/,
  );
  api.failures.clear();
  t.ok(api.objects.has(`${SECRETS}/tessera-extender-ca`), 'the CA Secret alone');
  t.notOk(api.objects.has(`${SECRETS}/tessera-extender-tls`));
  await runWithSecrets(kc, run({ webhookConfigurations: [], restartDeployments: [] }));
  const served = data(api, 'tessera-extender-tls');
  t.ok(trusted(served['tls.crt']!, splitPem(served['ca.crt']!), T0), 'issued over it: a consistent state');
  t.equal(data(api, 'tessera-extender-ca')['ca-signing.crt'], splitPem(served['ca.crt']!)[0], 'one CA in both');

  // A CA introduction whose second write (the CA Secret) failed: the bundle names a CA nobody holds the key of.
  const introduce = new Date(T0.getTime() + 9.1 * 365 * DAY);
  api.failures.set(`PUT ${SECRETS}/tessera-extender-ca`, 500);
  await t.rejects(runWithSecrets(kc, run({ now: introduce, webhookConfigurations: [], restartDeployments: [] })));
  api.failures.clear();
  t.equal(splitPem(data(api, 'tessera-extender-tls')['ca.crt']!).length, 2, 'the bundle got the new CA');
  t.equal(data(api, 'tessera-extender-ca')['next-ca.crt'], undefined, 'the CA Secret did not');
  const lines = await runWithSecrets(kc, run({ now: introduce, webhookConfigurations: [], restartDeployments: [] }));
  t.match(lines, [/dropped 1 retired CA/, /introduced a new CA/]);
  const bundle = splitPem(data(api, 'tessera-extender-tls')['ca.crt']!);
  t.equal(bundle[1], data(api, 'tessera-extender-ca')['next-ca.crt'], 'the bundle names the CA the CA Secret holds');
});

t.test('the command line: where the state lives, and what goes with what', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-certs-secret-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const base = ['--name', 'tessera-webhook', '--dns', 'tessera-webhook.tessera-system.svc'];
  const usage: [string[], RegExp][] = [
    [['rotate', ...base], /give either --dir or --secret/],
    [['rotate', '--dir', dir, '--secret', 'ns/x', ...base], /give either --dir or --secret/],
    [['rotate', '--secret', 'x', ...base], /--secret "x": expected NAMESPACE\/NAME/],
    [['rotate', '--secret', 'ns/X', ...base], /--secret "ns\/X": expected NAMESPACE\/NAME/],
    [
      ['rotate', '--dir', dir, '--webhook-configuration', 'tessera', ...base],
      /--webhook-configuration goes with --secret/,
    ],
    [['rotate', '--dir', dir, '--kubeconfig', 'k', ...base], /--kubeconfig goes with --secret/],
    [['issue', '--dir', dir, '--issue-if-missing', ...base], /--issue-if-missing goes with rotate/],
    [['rotate', '--secret', 'ns/x', '--ca-secret', 'x', ...base], /--ca-secret must name another Secret/],
  ];
  for (const [args, message] of usage)
    await t.rejects(async () => certsCommand(args), { constructor: UsageError, message }, args.join(' '));

  // --issue-if-missing works on a directory too, and is a plain rotate once there are certificates.
  const out: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => out.push(a.join(' '));
  try {
    t.equal(certsCommand(['rotate', '--dir', dir, '--issue-if-missing', ...base]), 0);
    t.equal(certsCommand(['rotate', '--dir', dir, '--issue-if-missing', ...base]), 0);
  } finally {
    console.log = log;
  }
  t.match(out, [/^issued a CA and a serving certificate/, 'nothing to rotate']);

  // --secret goes through --kubeconfig to the API server.
  const api = await fake(t);
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1\nkind: Config\nclusters: [{name: f, cluster: {server: "http://127.0.0.1:${api.port}", insecure-skip-tls-verify: true}}]\n` +
      'users: [{name: u, user: {token: t}}]\ncontexts: [{name: f, context: {cluster: f, user: u}}]\ncurrent-context: f\n',
  );
  console.log = (...a: unknown[]) => out.push(a.join(' '));
  try {
    t.equal(
      await certsCommand([
        'rotate',
        '--secret',
        `${NS}/tessera-webhook-tls`,
        '--issue-if-missing',
        '--kubeconfig',
        kubeconfig,
        ...base,
      ]),
      0,
    );
  } finally {
    console.log = log;
  }
  t.match(
    out.at(-1),
    /issued a CA and a serving certificate .* into Secret tessera-system\/tessera-webhook-tls \(CA in tessera-webhook-tls-ca\)/,
  );
  t.ok(api.objects.has(`${SECRETS}/tessera-webhook-tls-ca`), '--ca-secret defaults to NAME-ca');
});
