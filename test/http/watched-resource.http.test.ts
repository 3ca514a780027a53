// The servers' list-watch cache against a fake API server on loopback: what it keeps of each object.

import t from 'tap';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { WatchedResource } from '../../server/watched-resource.ts';
import { eventually, FakeApiServer } from '../fixtures/fake-apiserver.ts';
import { pod } from '../fixtures/pods.ts';

const managedFields = [
  { manager: 'kubectl-client-side-apply', operation: 'Update', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: {} },
  { manager: 'kube-scheduler', operation: 'Update', subresource: 'status', fieldsType: 'FieldsV1', fieldsV1: {} },
];

t.test('managedFields are dropped from listed and watched objects; the rest is kept', async (t) => {
  const api = new FakeApiServer();
  await api.start();
  t.teardown(() => api.stop());
  const listed = pod('listed').ns('research-a').build() as V1Pod;
  listed.metadata!.managedFields = managedFields as never;
  api.put('pods', listed);
  const kc = api.kubeconfig();
  const core = kc.makeApiClient(CoreV1Api);
  const pods = new WatchedResource<V1Pod>(
    kc,
    '/api/v1/pods',
    () => core.listPodForAllNamespaces(),
    pino({ level: 'silent' }),
    'pods',
  );
  t.teardown(() => pods.stop());
  await pods.start();
  t.ok(pods.synced);
  await eventually('the watch is open', () => api.requests.some((r) => r.includes('watch=true')));

  const watched = pod('watched').ns('research-a').annotate('tessera.io/gpu-fraction', '0.5').build() as V1Pod;
  watched.metadata!.managedFields = managedFields as never;
  api.put('pods', watched);
  await eventually('the watch delivers the second pod', () => pods.list().length === 2);

  for (const p of pods.list()) {
    t.equal(p.metadata?.managedFields, undefined, `${p.metadata?.name}: no managedFields`);
    t.equal(p.metadata?.namespace, 'research-a', `${p.metadata?.name}: metadata kept`);
  }
  const kept = pods.list().find((p) => p.metadata?.name === 'watched');
  t.equal(kept?.metadata?.annotations?.['tessera.io/gpu-fraction'], '0.5');
  t.ok(kept?.metadata?.resourceVersion, 'resourceVersion kept');
});
