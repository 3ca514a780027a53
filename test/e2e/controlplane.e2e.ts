import t from 'tap';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { startCluster } from '../controlplane/cluster.ts';

t.test('a real control plane schedules a pod onto a fake GPU node and tears down cleanly', async (t) => {
  const cluster = await startCluster({ scheduler: true, log: (l) => t.comment(l) });
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await cluster.stop();
  });
  const kc = new KubeConfig();
  kc.loadFromString(cluster.kubeconfigText('admin'));
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'smoke' } } });
  await core.createNamespacedServiceAccount({ namespace: 'smoke', body: { metadata: { name: 'default' } } });
  const node = await core.createNode({
    body: {
      metadata: {
        name: 'gpu-0',
        labels: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3', 'nvidia.com/gpu.count': '8' },
      },
    },
  });
  node.status = {
    capacity: { cpu: '64', memory: '512Gi', pods: '110', 'nvidia.com/gpu': '8' },
    allocatable: { cpu: '64', memory: '512Gi', pods: '110', 'nvidia.com/gpu': '8' },
    conditions: [
      {
        type: 'Ready',
        status: 'True',
        reason: 'KubeletReady',
        message: 'fake',
        lastHeartbeatTime: new Date(),
        lastTransitionTime: new Date(),
      },
    ],
  };
  await core.replaceNodeStatus({ name: 'gpu-0', body: node });
  // No node lifecycle controller runs, so drop the not-ready taint the apiserver may have added.
  await core.createNamespacedPod({
    namespace: 'smoke',
    body: {
      metadata: { name: 'p' },
      spec: {
        containers: [
          { name: 'c', image: 'registry.example/cuda:12', resources: { limits: { 'nvidia.com/gpu': '1' } } },
        ],
        tolerations: [{ operator: 'Exists' }],
      },
    },
  });
  let bound = '';
  for (let i = 0; i < 100 && bound === ''; i++) {
    const pod = await core.readNamespacedPod({ name: 'p', namespace: 'smoke' });
    bound = pod.spec?.nodeName ?? '';
    if (bound === '') await new Promise((r) => setTimeout(r, 200));
  }
  t.equal(bound, 'gpu-0', 'kube-scheduler bound the pod');
  const token = await core.createNamespacedServiceAccountToken({
    name: 'default',
    namespace: 'smoke',
    body: { spec: { audiences: [] } },
  });
  t.ok(
    (token.status?.token ?? '').split('.').length === 3,
    'the apiserver issues real service-account tokens (TokenRequest)',
  );
  await cluster.stop();
  stopped = true;
  t.rejects(core.listNamespace(), 'the apiserver is gone after stop()');
});
