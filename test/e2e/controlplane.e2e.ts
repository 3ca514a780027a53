import t from 'tap';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { startCluster } from '../controlplane/cluster.ts';
import { createFakeNode } from './stack.ts';

t.test(
  'a real control plane schedules a pod onto a fake GPU node, KWOK runs it, and all tears down cleanly',
  async (t) => {
    const cluster = await startCluster({
      scheduler: true,
      controllerManager: true,
      kwok: true,
      log: (l) => t.comment(l),
    });
    let stopped = false;
    t.teardown(async () => {
      if (!stopped) await cluster.stop();
    });
    const kc = new KubeConfig();
    kc.loadFromString(cluster.kubeconfigText('admin'));
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'smoke' } } });
    await core.createNamespacedServiceAccount({ namespace: 'smoke', body: { metadata: { name: 'default' } } });
    // Created with its capacity in status, as a kubelet registers; KWOK makes it Ready, the node-lifecycle controller
    // lifts the not-ready taint.
    await createFakeNode(
      core,
      {
        metadata: {
          name: 'gpu-0',
          labels: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3', 'nvidia.com/gpu.count': '8' },
        },
      },
      { cpu: '64', memory: '512Gi', pods: '110', 'nvidia.com/gpu': '8' },
    );
    await core.createNamespacedPod({
      namespace: 'smoke',
      body: {
        metadata: { name: 'p' },
        spec: {
          containers: [
            { name: 'c', image: 'registry.example/cuda:12', resources: { limits: { 'nvidia.com/gpu': '1' } } },
          ],
        },
      },
    });
    let pod = await core.readNamespacedPod({ name: 'p', namespace: 'smoke' });
    for (let i = 0; i < 100 && pod.status?.phase !== 'Running'; i++) {
      await new Promise((r) => setTimeout(r, 200));
      pod = await core.readNamespacedPod({ name: 'p', namespace: 'smoke' });
    }
    t.equal(pod.spec?.nodeName, 'gpu-0', 'kube-scheduler bound the pod');
    t.equal(pod.status?.phase, 'Running', 'KWOK started it');
    const node = await core.readNode({ name: 'gpu-0' });
    t.equal(node.status?.allocatable?.['nvidia.com/gpu'], '8', 'the node keeps the allocatable it registered with');
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
  },
);
