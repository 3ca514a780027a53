// The manager's job webhook over HTTP with admission.k8s.io/v1 AdmissionReviews as kube-apiserver sends them for a
// batch/v1 Job: an annotation-only GPU ask gets the countable tessera.io/gpu-milli in its template (a JSON Patch that,
// applied, gives the Job Kueue counts), a Job that already asks with resources is left as written, and malformed
// bodies and unreadable namespaces get clear answers.

import jsonPatch from 'fast-json-patch';
import { pino } from 'pino';
import t from 'tap';
import { startJobWebhook } from '../../dispatcher/job-webhook.ts';
import { fleetPolicy } from '../unit/core/fleet/fleet-fixtures.ts';

const policy = fleetPolicy();
const tenants: Record<string, string | null> = { research: 'research', bank: 'bank', plain: null };

function job(annotations: Record<string, string>, limits?: Record<string, string>) {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'train', namespace: 'research', labels: { 'kueue.x-k8s.io/queue-name': 'gpu' } },
    spec: {
      parallelism: 2,
      completions: 2,
      template: {
        metadata: { annotations },
        spec: {
          restartPolicy: 'Never',
          containers: [
            { name: 'train', image: 'registry.example/train:1', ...(limits ? { resources: { limits } } : {}) },
          ],
        },
      },
    },
  };
}

function review(object: unknown, namespace = 'research', operation = 'CREATE') {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '7d3c0a52-1f7e-4c36-9a53-0b7f8d1e2c01',
      kind: { group: 'batch', version: 'v1', kind: 'Job' },
      resource: { group: 'batch', version: 'v1', resource: 'jobs' },
      namespace,
      operation,
      userInfo: { username: 'alice@acme.example', groups: ['system:authenticated'] },
      object,
    },
  };
}

const hook = await startJobWebhook({
  host: '127.0.0.1',
  port: 0,
  policy: () => policy,
  namespaceTenant: async (ns) => {
    if (!(ns in tenants)) throw new Error(`namespaces "${ns}" is forbidden`);
    return tenants[ns] ?? null;
  },
  log: pino({ level: 'silent' }),
});
t.teardown(() => hook.close());

async function post(body: unknown): Promise<{ status: number; json: { response: Answer; error: string } }> {
  const r = await fetch(`${hook.url}/mutate-job`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as { response: Answer; error: string } };
}

interface Answer {
  uid: string;
  allowed: boolean;
  patch?: string;
  patchType?: string;
  warnings?: string[];
  status?: { message: string };
}

t.test('an annotation-only fraction gets tessera.io/gpu-milli in its template', async (t) => {
  const object = job({ 'tessera.io/gpu-fraction': '0.25' });
  const { status, json } = await post(review(object));
  t.equal(status, 200);
  const res = json.response;
  t.equal(res.uid, '7d3c0a52-1f7e-4c36-9a53-0b7f8d1e2c01');
  t.equal(res.allowed, true);
  t.equal(res.patchType, 'JSONPatch');
  const patched = jsonPatch.applyPatch(
    structuredClone(object),
    JSON.parse(Buffer.from(res.patch!, 'base64').toString('utf8')),
  ).newDocument;
  t.same(patched.spec.template.spec.containers[0], {
    name: 'train',
    image: 'registry.example/train:1',
    resources: { limits: { 'tessera.io/gpu-milli': '250' }, requests: { 'tessera.io/gpu-milli': '250' } },
  });
  t.same(patched.spec.template.metadata, object.spec.template.metadata, 'the annotations stay for the worker');
  t.match(res.warnings?.[0], /added tessera.io\/gpu-milli: 250/);
});

t.test(
  'a job asking with resources, a job without GPUs, an update, a namespace without tenant: no patch',
  async (t) => {
    for (const body of [
      review(job({ 'tessera.io/gpu-fraction': '0.5' }, { 'tessera.io/gpu-milli': '500' })),
      review(job({})),
      review(job({ 'tessera.io/gpu-fraction': '0.5' }), 'research', 'UPDATE'),
      review(job({ 'tessera.io/gpu-fraction': '0.5' }), 'plain'),
    ]) {
      const res = (await post(body)).json.response;
      t.equal(res.allowed, true);
      t.notOk(res.patch, `no patch (${body.request.operation} in ${body.request.namespace})`);
    }
  },
);

t.test('a namespace it cannot read denies the job with the reason and what to do', async (t) => {
  const res = ((await post(review(job({ 'tessera.io/gpu-fraction': '0.5' }), 'secret'))).json as { response: Answer })
    .response;
  t.equal(res.allowed, false);
  t.match(res.status?.message, /could not read the tessera.io\/tenant label of namespace secret.*forbidden.*retry/);
});

t.test('malformed bodies get a 400 that says what is wrong', async (t) => {
  const notJson = await post('{ not json');
  t.equal(notJson.status, 400);
  t.match(notJson.json.error, /unreadable request body/);
  const wrong = await post({ apiVersion: 'v1', kind: 'Pod' });
  t.equal(wrong.status, 400);
  t.match(wrong.json.error, /expected apiVersion admission.k8s.io\/v1 and kind AdmissionReview/);
});
