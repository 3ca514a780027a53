import t from 'tap';
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import jsonPatch from 'fast-json-patch';
import { pino } from 'pino';
import { createCa, issueLeaf } from '../../certs/authority.ts';
import { startWebhook } from '../../webhook/server.ts';
import { pod } from '../fixtures/pods.ts';
import {
  EXAMPLE_POLICY_TEXT,
  view,
  BOB,
  ALICE,
  admit,
  examplePolicy,
  EXTENDER,
  NAMESPACES,
} from '../fixtures/admission.ts';
import { claimTemplate, exactly, NVIDIA_CLASSES } from '../fixtures/dra.ts';
import { staticClusterView } from '../../core/admission/cluster-view.ts';
import { staticDraLookup } from '../../core/dra/lookup.ts';
import type { KubePod } from '../../core/kube-objects.ts';

const log = pino({ level: 'silent' });

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-webhook-'));
  const policyDir = join(dir, 'policy');
  const certDir = join(dir, 'tls');
  mkdirSync(policyDir, { recursive: true });
  mkdirSync(certDir, { recursive: true });
  writeFileSync(join(policyDir, 'policy.yaml'), EXAMPLE_POLICY_TEXT);
  const ca = createCa();
  const leaf = issueLeaf(ca, { commonName: 'tessera-webhook', dnsNames: ['localhost'], ips: ['127.0.0.1'] });
  writeFileSync(join(certDir, 'tls.crt'), leaf.certPem);
  writeFileSync(join(certDir, 'tls.key'), leaf.keyPem);
  return { dir, policyDir, certDir, ca };
}

interface Reply {
  status: number;
  body: any;
  serial: string;
}

function post(url: string, path: string, body: string | object, ca: string, method = 'POST'): Promise<Reply> {
  const data = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${url}${path}`,
      {
        method,
        ca,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // plain text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, serial });
        });
      },
    );
    req.on('error', reject);
    req.end(method === 'GET' ? undefined : data);
  });
}

const review = (request: object) => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request });
const podReview = (p: object, extra: object = {}) =>
  review({
    uid: 'e7a1f0b2-0000-4000-8000-000000000001',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: (p as any).metadata.namespace,
    operation: 'CREATE',
    userInfo: BOB,
    object: p,
    ...extra,
  });

// Real reviews of Bindings, captured from kube-apiserver v1.37.2 (see the file's `source`).
const CAPTURED = JSON.parse(readFileSync(new URL('../fixtures/binding-reviews.json', import.meta.url), 'utf8')) as {
  podsBinding: any;
  legacyBindings: any;
};

t.test('the webhook over HTTPS with real AdmissionReview payloads', async (t) => {
  const env = setup();
  const hook = await startWebhook({
    policyDir: env.policyDir,
    host: '127.0.0.1',
    port: 0,
    tls: { certFile: join(env.certDir, 'tls.crt'), keyFile: join(env.certDir, 'tls.key') },
    view: view(),
    systemUsers: [],
    log,
  });
  t.teardown(async () => {
    await hook.close();
    rmSync(env.dir, { recursive: true, force: true });
  });
  const ca = env.ca.certPem;

  t.test('mutate answers a v1 AdmissionReview with the uid and a base64 JSON Patch that applies', async (t) => {
    const p = pod('train').ns('research-a').annotate('tessera.io/gpu-fraction', '0.5').build();
    const r = await post(hook.url, '/mutate', podReview(p), ca);
    t.equal(r.status, 200);
    t.match(r.body, {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: 'e7a1f0b2-0000-4000-8000-000000000001', allowed: true, patchType: 'JSONPatch' },
    });
    const ops = JSON.parse(Buffer.from(r.body.response.patch, 'base64').toString());
    const patched = jsonPatch.applyPatch(structuredClone(p), ops, true, false).newDocument as any;
    t.equal(patched.spec.schedulerName, 'tessera-scheduler');
    t.same(patched.spec.containers[0].resources.limits, { 'tessera.io/gpu-milli': '500' });
  });

  t.test(
    'mutate-job writes the countable gpu-milli into an annotation-only Job template (a fleet manager)',
    async (t) => {
      const job = {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: { name: 'train', namespace: 'research-a' },
        spec: {
          template: {
            metadata: { annotations: { 'tessera.io/gpu-fraction': '0.5' } },
            spec: { restartPolicy: 'Never', containers: [{ name: 'train', image: 'registry.example/train:1' }] },
          },
        },
      };
      const r = await post(
        hook.url,
        '/mutate-job',
        review({
          uid: 'e7a1f0b2-0000-4000-8000-0000000000j1',
          kind: { group: 'batch', version: 'v1', kind: 'Job' },
          namespace: 'research-a',
          operation: 'CREATE',
          userInfo: { username: 'alice' },
          object: job,
        }),
        ca,
      );
      t.equal(r.status, 200);
      t.match(r.body.response, { uid: 'e7a1f0b2-0000-4000-8000-0000000000j1', allowed: true, patchType: 'JSONPatch' });
      const ops = JSON.parse(Buffer.from(r.body.response.patch, 'base64').toString());
      const patched = jsonPatch.applyPatch(structuredClone(job), ops, true, false).newDocument as any;
      t.same(patched.spec.template.spec.containers[0].resources, {
        limits: { 'tessera.io/gpu-milli': '500' },
        requests: { 'tessera.io/gpu-milli': '500' },
      });
    },
  );

  t.test('a memory-only ask is mutated into a share and validated as one (issue 20)', async (t) => {
    for (const milli of [null, 300]) {
      const b = pod(`mem-${milli}`)
        .ns('research-a')
        .label('team', 'vision')
        .label('cost-center', '1234')
        .annotate('tessera.io/gpu-memory', '70Gi');
      if (milli !== null) b.gpuMilli(milli);
      const p = b.build();
      const m = await post(hook.url, '/mutate', podReview(p), ca);
      t.match(m.body.response, { allowed: true, patchType: 'JSONPatch' });
      const ops = JSON.parse(Buffer.from(m.body.response.patch, 'base64').toString());
      const patched = jsonPatch.applyPatch(structuredClone(p), ops, true, false).newDocument as any;
      t.same(patched.spec.containers[0].resources.limits, { 'tessera.io/gpu-milli': '499' });
      const v = await post(hook.url, '/validate', podReview(patched), ca);
      t.match(v.body.response, { allowed: true }, `gpu-milli ${milli ?? 'unset'} + 70Gi is admitted`);
    }
    const small = pod('mem-small').ns('research-a').annotate('tessera.io/gpu-memory', '2Gi').build();
    const m = await post(hook.url, '/mutate', podReview(small), ca);
    const ops = JSON.parse(Buffer.from(m.body.response.patch, 'base64').toString());
    const patched = jsonPatch.applyPatch(structuredClone(small), ops, true, false).newDocument as any;
    const v = await post(hook.url, '/validate', podReview(patched), ca);
    t.match(v.body.response, {
      allowed: false,
      status: { code: 403, message: /2048 MiB of GPU memory alone, which is 0\.015 of a H200.*at least 7189 MiB/ },
    });
  });

  t.test('validate denies with 403 and every problem, warns and audits', async (t) => {
    const p = pod('bad').ns('plain').annotate('tessera.io/gpu-fraction', '0.5').build();
    const r = await post(hook.url, '/validate', podReview(p), ca);
    t.match(r.body.response, {
      uid: 'e7a1f0b2-0000-4000-8000-000000000001',
      allowed: false,
      status: { code: 403, message: /namespace plain has no tessera.io\/tenant label/ },
    });
    const ns = review({
      uid: 'n1',
      kind: { group: '', version: 'v1', kind: 'Namespace' },
      operation: 'CREATE',
      userInfo: ALICE,
      object: { metadata: { name: 'x', labels: { 'tessera.io/tenant': 'typo' } } },
    });
    const w = await post(hook.url, '/validate', ns, ca);
    t.match(w.body.response, { allowed: true, warnings: [/tenant "typo" is not defined/] });
    const del = await post(
      hook.url,
      '/validate',
      review({ uid: 'd', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'DELETE', userInfo: BOB }),
      ca,
    );
    t.match(del.body.response, { uid: 'd', allowed: true });
  });

  t.test('malformed and oversized requests get a clear 4xx and the server lives on', async (t) => {
    t.match(await post(hook.url, '/validate', '{"apiVersion":', ca), {
      status: 400,
      body: { error: /not valid JSON/ },
    });
    t.match(
      await post(
        hook.url,
        '/validate',
        { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: {} },
        ca,
      ),
      { status: 400, body: { error: /admissionReviewVersions: \["v1"\]/ } },
    );
    t.match(await post(hook.url, '/mutate', review({ kind: { kind: 'Pod' }, operation: 'CREATE' }), ca), {
      status: 400,
      body: { error: /request.uid is missing/ },
    });
    t.match(await post(hook.url, '/mutate', '[1,2]', ca), { status: 400, body: { error: /not a JSON object/ } });
    t.match(await post(hook.url, '/validate', 'x'.repeat(3 * 1024 * 1024 + 10), ca), {
      status: 413,
      body: { error: /larger than 3 MiB/ },
    });
    t.match(await post(hook.url, '/nope', '{}', ca), { status: 404 });
    t.match(await post(hook.url, '/healthz', '', ca, 'GET'), { status: 200, body: 'ok' });
  });

  t.test('property: fuzzed AdmissionReviews never crash the server', async (t) => {
    const bases = [
      podReview(pod('f').ns('research-a').annotate('tessera.io/gpu-fraction', '0.5').build()),
      CAPTURED.podsBinding,
    ];
    const mutateAt = (obj: any, path: string[], value: unknown): any => {
      if (path.length === 0) return value;
      const copy = Array.isArray(obj) ? [...obj] : { ...(typeof obj === 'object' && obj !== null ? obj : {}) };
      copy[path[0]!] = mutateAt(copy[path[0]!], path.slice(1), value);
      return copy;
    };
    const paths = fc.constantFrom(
      ['request'],
      ['request', 'object'],
      ['request', 'object', 'spec'],
      ['request', 'object', 'spec', 'containers'],
      ['request', 'object', 'spec', 'containers', '0', 'resources'],
      ['request', 'object', 'metadata', 'annotations'],
      ['request', 'object', 'metadata', 'annotations', 'tessera.io/gpu-fraction'],
      ['request', 'userInfo'],
      ['request', 'kind'],
      ['request', 'operation'],
      ['request', 'object', 'spec', 'tolerations'],
      ['request', 'object', 'spec', 'affinity'],
      ['request', 'object', 'metadata'],
      ['request', 'object', 'metadata', 'labels'],
      ['request', 'object', 'target'],
      ['request', 'name'],
      ['request', 'namespace'],
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(paths, fc.jsonValue()), { minLength: 1, maxLength: 4 }),
        fc.constantFrom('/mutate', '/validate'),
        fc.constantFrom(...bases),
        async (edits, path, base) => {
          let body: any = base;
          for (const [p, v] of edits) body = mutateAt(body, [...p], v);
          const r = await post(hook.url, path, body, ca);
          return r.status === 200 || r.status === 400;
        },
      ),
      { numRuns: 150, seed: 21 },
    );
    t.match(await post(hook.url, '/healthz', '', ca, 'GET'), { status: 200 }, 'still alive');
  });

  t.test('a bad policy file keeps the last good policy in force, loudly', async (t) => {
    const before = hook.policies.status().revision;
    writeFileSync(
      join(env.policyDir, 'policy.yaml'),
      EXAMPLE_POLICY_TEXT.replace('fractionMode: fraction', 'fractionMode: slices'),
    );
    hook.policies.reload();
    t.match(hook.policies.status(), {
      state: 'stale',
      revision: before,
      problems: [/policy.yaml: \/spec\/pools\/0\/fractionMode: must be one of/],
    });
    const ready = await post(hook.url, '/readyz', '', ca, 'GET');
    t.match(ready, { status: 200, body: { ready: true, reason: /serving last good policy revision .*invalid/ } });
    const metrics = await post(hook.url, '/metrics', '', ca, 'GET');
    t.match(metrics.body, /tessera_policy_load_state\{state="stale"\} 1/);
    t.match(metrics.body, /tessera_policy_rejections_total 1/);
    const r = await post(
      hook.url,
      '/mutate',
      podReview(pod('still').ns('research-a').annotate('tessera.io/gpu-fraction', '0.5').build()),
      ca,
    );
    t.equal(r.body.response.allowed, true, 'admission goes on under the last good policy');
    writeFileSync(
      join(env.policyDir, 'policy.yaml'),
      EXAMPLE_POLICY_TEXT.replace('quota: { gpus: 12 }', 'quota: { gpus: 16 }'),
    );
    hook.policies.reload();
    t.match(hook.policies.status(), { state: 'valid' });
    t.not(hook.policies.status().revision, before, 'a new revision');
  });

  t.test('certificates are reloaded from disk without a restart', async (t) => {
    const first = (await post(hook.url, '/healthz', '', ca, 'GET')).serial;
    const next = issueLeaf(env.ca, { commonName: 'tessera-webhook', dnsNames: ['localhost'], ips: ['127.0.0.1'] });
    writeFileSync(join(env.certDir, 'tls.key.new'), next.keyPem);
    writeFileSync(join(env.certDir, 'tls.crt.new'), next.certPem);
    renameSync(join(env.certDir, 'tls.key.new'), join(env.certDir, 'tls.key'));
    renameSync(join(env.certDir, 'tls.crt.new'), join(env.certDir, 'tls.crt'));
    let serial = first;
    for (let i = 0; i < 40 && serial === first; i++) {
      await new Promise((r) => setTimeout(r, 250));
      serial = (await post(hook.url, '/healthz', '', ca, 'GET')).serial;
    }
    t.not(serial, first, 'a new certificate is served');
  });
});

t.test('Bindings: the reviews kube-apiserver sends for pods/binding, judged on the pod they name', async (t) => {
  const env = setup();
  const policy = examplePolicy();
  const captured = CAPTURED.podsBinding.request;
  t.match(captured, {
    kind: { group: '', version: 'v1', kind: 'Binding' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    subResource: 'binding',
    name: 'a',
    namespace: 'vision',
    object: { kind: 'Binding', metadata: { name: 'a', uid: /./ }, target: { kind: 'Node', name: 'n1' } },
  });
  const gpuPod = (name: string, uid: string): KubePod => {
    const admitted = admit(
      pod(name)
        .ns('research-a')
        .uid(uid)
        .label('team', 'v')
        .label('cost-center', '1')
        .annotate('tessera.io/gpu-fraction', '0.5')
        .build(),
      policy,
    ).pod;
    return { ...admitted, metadata: { ...admitted.metadata, namespace: 'vision' } };
  };
  const plain = pod('a').ns('vision').uid(captured.object.metadata.uid).build();
  const live = new Map<string, KubePod>();
  const reads: string[] = [];
  let apiDown = false;
  const hook = await startWebhook({
    policyDir: env.policyDir,
    host: '127.0.0.1',
    port: 0,
    tls: { certFile: join(env.certDir, 'tls.crt'), keyFile: join(env.certDir, 'tls.key') },
    view: staticClusterView(
      NAMESPACES,
      [plain, gpuPod('train', 'uid-train')],
      staticDraLookup([...NVIDIA_CLASSES, claimTemplate('one-gpu', 'vision', [exactly('gpu', 'gpu.nvidia.com')])]),
    ),
    readPod: async (namespace, name) => {
      reads.push(`${namespace}/${name}`);
      if (apiDown) throw new Error('connect ECONNREFUSED');
      return live.get(`${namespace}/${name}`) ?? null;
    },
    systemUsers: [EXTENDER.username!],
    log,
  });
  t.teardown(async () => {
    await hook.close();
    rmSync(env.dir, { recursive: true, force: true });
  });
  const ca = env.ca.certPem;
  const send = (edit: (request: any) => void = () => {}, base = CAPTURED.podsBinding) => {
    const body = structuredClone(base);
    edit(body.request);
    return post(hook.url, '/validate', body, ca).then((r) => r.body.response);
  };
  const bindingOf = (name: string, uid: string) => (r: any) => {
    r.name = name;
    r.object.metadata.name = name;
    r.object.metadata.uid = uid;
    delete r.object.metadata.annotations;
  };

  t.match(
    await send(),
    {
      uid: captured.uid,
      allowed: false,
      status: {
        code: 403,
        message:
          /^Tessera denied this request \(1 problem\):\n- \[tessera\/system-owned\] the Binding of pod vision\/a sets annotation tessera.io\/visible-devices, which only Tessera's extender writes, in its own Binding when it commits a placement; admin may not. Remove it from the Binding$/,
      },
    },
    'system-owned annotations in a Binding by anyone else: denied, even for system:masters',
  );
  t.match(await send((r) => (r.userInfo = EXTENDER)), { allowed: true }, 'the extender writes them');
  t.match(await send((r) => delete r.object.metadata.annotations), { allowed: true }, 'a plain Binding of a plain pod');
  const scheduler = { username: 'system:kube-scheduler', groups: ['system:authenticated'] };
  t.match(
    await send((r) => {
      bindingOf('train', 'uid-train')(r);
      r.userInfo = scheduler;
    }),
    {
      allowed: false,
      status: {
        message:
          /\[tessera\/accounting\] pod vision\/train asks for tessera.io\/gpu-milli, so only Tessera's extender may bind it .*system:kube-scheduler may not. Leave the pod to tessera-scheduler. If kube-scheduler sent this Binding itself, it did not ask the extender: list tessera.io\/gpu-milli in the extender's managedResources/,
      },
    },
    'a GPU pod bound by anyone but the extender: denied',
  );
  t.same(reads, [], 'the informer cache answered so far');

  live.set('vision/fresh', gpuPod('fresh', 'uid-fresh'));
  t.match(await send(bindingOf('fresh', 'uid-fresh')), {
    allowed: false,
    status: { message: /pod vision\/fresh asks for/ },
  });
  live.set('vision/a', gpuPod('a', 'uid-a-2'));
  t.match(
    await send(bindingOf('a', 'uid-a-2')),
    { allowed: false, status: { message: /pod vision\/a asks for/ } },
    'the cache holds an older pod of that name: the one the Binding names is read',
  );
  const claimer = pod('claimer').ns('vision').uid('uid-claimer').build();
  claimer.spec!.resourceClaims = [{ name: 'c', resourceClaimTemplateName: 'one-gpu' }];
  live.set('vision/claimer', claimer);
  t.match(
    await send(bindingOf('claimer', 'uid-claimer')),
    { allowed: false, status: { message: /pod vision\/claimer asks for GPU claims \(c\)/ } },
    'a pod read from the API is judged with the cluster’s DRA objects too',
  );
  t.same(reads, ['vision/fresh', 'vision/a', 'vision/claimer'], 'the API server is asked only when the cache lags');

  t.match(
    await send(bindingOf('b', ''), CAPTURED.legacyBindings),
    { allowed: true },
    'the older bindings resource; a pod the API server does not have is its own NotFound',
  );
  apiDown = true;
  t.match(
    await send(bindingOf('later', 'uid-later')),
    { allowed: false, status: { code: 500, message: /could not evaluate this request/ } },
    'the pod cannot be read: fail closed',
  );
  const metrics = await post(hook.url, '/metrics', '', ca, 'GET');
  t.match(
    metrics.body,
    /tessera_webhook_review_duration_seconds_count\{webhook="validate",kind="Binding",operation="CREATE",allowed="false"\} [1-9]/,
  );
});

t.test('without a valid policy the webhook is not ready and denies', async (t) => {
  const env = setup();
  writeFileSync(join(env.policyDir, 'policy.yaml'), 'kind: Nonsense\n');
  const hook = await startWebhook({
    policyDir: env.policyDir,
    host: '127.0.0.1',
    port: 0,
    tls: { certFile: join(env.certDir, 'tls.crt'), keyFile: join(env.certDir, 'tls.key') },
    view: view(),
    systemUsers: [],
    log,
  });
  t.teardown(async () => {
    await hook.close();
    rmSync(env.dir, { recursive: true, force: true });
  });
  t.match(await post(hook.url, '/readyz', '', env.ca.certPem, 'GET'), {
    status: 503,
    body: { ready: false, reason: /no valid policy/ },
  });
  const r = await post(hook.url, '/mutate', podReview(pod('x').ns('research-a').build()), env.ca.certPem);
  t.match(r.body.response, { allowed: false, status: { code: 503, message: /no valid policy in force/ } });
});
