// The fleet controllers against an API server stand-in that answers Kueue's objects as kube-apiserver would and
// records what they write: the gpu-fit check activates its AdmissionCheck and writes a Workload's check state with
// server-side apply as tessera-gpu-fit; the dispatcher reads a worker's capacity through its MultiKueue kubeconfig
// Secret and writes nominatedClusterNames with a merge patch, keeping an EU-only tenant off a US worker.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import t from 'tap';
import { startDispatcher } from '../../dispatcher/dispatcher.ts';
import { startGpuFitCheck } from '../../extender/gpu-fit-check.ts';
import { KubeJson } from '../../server/kube-json.ts';
import { currentCapacity } from '../../extender/fleet-capacity.ts';
import { fleetPolicy, fractionSet, workerState } from '../unit/core/fleet/fleet-fixtures.ts';

interface Call {
  method: string;
  path: string;
  contentType: string | undefined;
  body: unknown;
}

/** Serves fixed GET answers by path and records every other call. */
async function apiserver(answers: Record<string, unknown>) {
  const calls: Call[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = req.url ?? '';
      const text = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'GET') {
        const answer = answers[path.split('?')[0]!];
        res.writeHead(answer === undefined ? 404 : 200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer ?? { kind: 'Status', message: `${path} not found` }));
        return;
      }
      calls.push({ method: req.method ?? '', path, contentType: req.headers['content-type'], body: JSON.parse(text) });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser({ name: 'fake', server: url, skipTLSVerify: true }, { name: 'u', token: 't' });
  return { calls, url, kc, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const KUEUE = '/apis/kueue.x-k8s.io/v1beta2';

function workload(name: string, namespace: string, state: string, podSets = [fractionSet(0.5)]) {
  return {
    apiVersion: 'kueue.x-k8s.io/v1beta2',
    kind: 'Workload',
    metadata: {
      name,
      namespace,
      creationTimestamp: '2026-12-07T10:00:00Z',
      ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: name.replace(/^job-/, ''), uid: 'u' }],
    },
    spec: { queueName: 'gpu', podSets },
    status: {
      conditions: [{ type: 'QuotaReserved', status: 'True', reason: 'QuotaReserved', message: '' }],
      admission: {
        clusterQueue: namespace,
        podSetAssignments: [{ name: 'main', flavors: { 'tessera.io/gpu-milli': 'eu-shared' }, count: 1 }],
      },
      admissionChecks: [{ name: 'gpu-fit', state, message: '', lastTransitionTime: '2026-12-07T10:00:00Z' }],
    },
  };
}

t.test('gpu-fit: activates its AdmissionCheck and answers a reserved workload with server-side apply', async (t) => {
  const api = await apiserver({
    [`${KUEUE}/admissionchecks`]: {
      items: [
        { metadata: { name: 'gpu-fit' }, spec: { controllerName: 'tessera.io/gpu-fit' } },
        { metadata: { name: 'other' }, spec: { controllerName: 'example.com/other' } },
      ],
    },
    [`${KUEUE}/resourceflavors`]: {
      items: [{ metadata: { name: 'eu-shared' }, spec: { nodeLabels: { 'tessera.io/pool': 'eu-shared' } } }],
    },
    [`${KUEUE}/workloads`]: {
      items: [
        workload('job-fits-1', 'research', 'Pending'),
        workload('job-tiny-2', 'research', 'Pending', [fractionSet(0.05)]),
      ],
    },
  });
  t.teardown(api.close);
  const check = startGpuFitCheck({
    api: new KubeJson(api.kc),
    state: workerState('eu'),
    pods: () => [],
    isLeader: () => true,
    intervalMs: 3_600_000,
    registry: new Registry(),
    log: pino({ level: 'silent' }),
  });
  t.teardown(() => check.stop());
  const written = await check.pass();
  t.same(
    written.map((w) => [w.workload, w.state]),
    [
      ['research/job-fits-1', 'Ready'],
      ['research/job-tiny-2', 'Rejected'],
    ],
  );
  const activate = api.calls.find((c) => c.path.startsWith(`${KUEUE}/admissionchecks/gpu-fit/status`));
  t.ok(activate, 'the AdmissionCheck is marked Active');
  t.equal(activate?.contentType, 'application/apply-patch+yaml');
  t.match(activate?.path, /fieldManager=tessera-gpu-fit&force=true/);
  t.match(activate?.body, { status: { conditions: [{ type: 'Active', status: 'True' }] } });
  t.notOk(
    api.calls.some((c) => c.path.includes('/admissionchecks/other/')),
    "another controller's check is left alone",
  );
  const ready = api.calls.find((c) => c.path.startsWith(`${KUEUE}/namespaces/research/workloads/job-fits-1/status`));
  t.match(ready?.body, {
    apiVersion: 'kueue.x-k8s.io/v1beta2',
    kind: 'Workload',
    metadata: { name: 'job-fits-1', namespace: 'research' },
    status: { admissionChecks: [{ name: 'gpu-fit', state: 'Ready' }] },
  });
  const rejected = api.calls.find((c) => c.path.startsWith(`${KUEUE}/namespaces/research/workloads/job-tiny-2/status`));
  t.match(rejected?.body, { status: { admissionChecks: [{ state: 'Rejected', message: /gpu-request-bounds/ }] } });
  t.equal(check.recent().length, 2);
});

t.test('dispatcher: reads each worker through its MultiKueue kubeconfig, nominates by region and room', async (t) => {
  const eu = await apiserver({
    '/api/v1/namespaces/tessera-system/configmaps/tessera-fleet-capacity': {
      data: { 'capacity.json': JSON.stringify(currentCapacity(workerState('eu'), 'eu-central', 'eu-central')) },
    },
  });
  const us = await apiserver({
    '/api/v1/namespaces/tessera-system/configmaps/tessera-fleet-capacity': {
      data: { 'capacity.json': JSON.stringify(currentCapacity(workerState('us'), 'us-east', 'us-east')) },
    },
  });
  const kubeconfig = (url: string) =>
    Buffer.from(
      `apiVersion: v1\nkind: Config\ncurrent-context: w\nclusters: [{name: w, cluster: {server: "${url}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: w, context: {cluster: w, user: u}}]\n`,
    ).toString('base64');
  const active = { conditions: [{ type: 'Active', status: 'True' }] };
  const mk = (name: string) => ({
    metadata: { name },
    spec: { clusterSource: { kubeConfig: { locationType: 'Secret', location: `${name}-kubeconfig` } } },
    status: active,
  });
  const manager = await apiserver({
    [`${KUEUE}/multikueueclusters`]: { items: [mk('eu-central'), mk('us-east')] },
    '/api/v1/namespaces/kueue-system/secrets/eu-central-kubeconfig': { data: { kubeconfig: kubeconfig(eu.url) } },
    '/api/v1/namespaces/kueue-system/secrets/us-east-kubeconfig': { data: { kubeconfig: kubeconfig(us.url) } },
    [`${KUEUE}/admissionchecks`]: {
      items: [
        {
          metadata: { name: 'multikueue' },
          spec: { controllerName: 'kueue.x-k8s.io/multikueue', parameters: { name: 'fleet' } },
        },
      ],
    },
    [`${KUEUE}/multikueueconfigs/fleet`]: { spec: { clusters: ['eu-central', 'us-east'] } },
    '/api/v1/namespaces': {
      items: [
        { metadata: { name: 'bank', labels: { 'tessera.io/tenant': 'bank' } } },
        { metadata: { name: 'research', labels: { 'tessera.io/tenant': 'research' } } },
      ],
    },
    [`${KUEUE}/workloads`]: {
      items: [
        {
          ...workload('job-a', 'bank', 'Pending'),
          status: {
            ...workload('job-a', 'bank', 'Pending').status,
            admissionChecks: [{ name: 'multikueue', state: 'Pending' }],
          },
        },
        {
          ...workload('job-b', 'research', 'Pending'),
          status: {
            ...workload('job-b', 'research', 'Pending').status,
            admissionChecks: [{ name: 'multikueue', state: 'Pending' }],
          },
        },
      ],
    },
  });
  t.teardown(async () => {
    await manager.close();
    await eu.close();
    await us.close();
  });
  const d = startDispatcher({
    kubeconfig: manager.kc,
    policy: () => fleetPolicy(),
    intervalMs: 3_600_000,
    log: pino({ level: 'silent' }),
  });
  t.teardown(() => d.stop());
  const records = await d.pass();
  t.same(records.find((r) => r.workload === 'bank/job-a')?.nominated, ['eu-central'], 'bank stays in the EU');
  t.same(
    [...(records.find((r) => r.workload === 'research/job-b')?.nominated ?? [])].sort(),
    ['eu-central', 'us-east'],
    'research may go to either, both have room',
  );
  const patch = manager.calls.find((c) => c.path.startsWith(`${KUEUE}/namespaces/bank/workloads/job-a/status`));
  t.equal(patch?.contentType, 'application/merge-patch+json');
  t.match(patch?.path, /fieldManager=tessera-fleet-dispatcher/);
  t.same(patch?.body, { status: { nominatedClusterNames: ['eu-central'] } });
  const note = manager.calls.find(
    (c) => c.path === `${KUEUE}/namespaces/bank/workloads/job-a?fieldManager=tessera-fleet-dispatcher`,
  );
  t.match(note?.body, { metadata: { annotations: { 'tessera.io/fleet-dispatch': /eu-central has 2/ } } });
  t.equal(d.workers().length, 2);
});
