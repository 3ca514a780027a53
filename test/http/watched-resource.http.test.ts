// The servers' list-watch cache against a fake API server on loopback: what it keeps of each object.

import t from 'tap';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { listInPages } from '../../server/paged-list.ts';
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

t.test('a paged list: every page read, one consistent list, then the watch from its resourceVersion', async (t) => {
  const api = new FakeApiServer();
  await api.start();
  t.teardown(() => api.stop());
  for (let i = 0; i < 1234; i++) api.put('pods', pod(`p${i}`).ns('research-a').build());
  const kc = api.kubeconfig();
  const core = kc.makeApiClient(CoreV1Api);
  let pages = 0;
  const pods = new WatchedResource<V1Pod>(
    kc,
    '/api/v1/pods',
    () =>
      listInPages((p) => {
        pages++;
        // A pod created while the list is paged is not in it (the pages read the first page's snapshot)...
        if (pages === 2) api.put('pods', pod('late').ns('research-a').build());
        return core.listPodForAllNamespaces(p);
      }),
    pino({ level: 'silent' }),
    'pods',
  );
  t.teardown(() => pods.stop());
  await pods.start();
  t.equal(pages, 3, '500 + 500 + 234');
  t.ok(
    api.requests.filter((r) => /\/api\/v1\/pods\?.*limit=500/.test(r)).length === 3,
    'each page asked with limit=500',
  );
  t.equal(pods.list().length, 1234, 'every page in the cache');
  // ...and arrives through the watch, which starts from the snapshot's resourceVersion.
  await eventually('the late pod arrives through the watch', () => pods.list().length === 1235);
});
