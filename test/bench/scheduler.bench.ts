// Benchmark: scheduling throughput of the same kube-scheduler binary with and without the Tessera extender. 1,000 fake
// GPU nodes (8 GPUs each, run by KWOK, so bound pods go Running as on a live cluster), 2,000 pods asking for one GPU
// each, created while no scheduler runs; then the scheduler starts and we time until every pod is bound. Goal: the
// extender keeps at least half the pods/s.

import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort, startCluster } from '../controlplane/cluster.ts';
import { createFakeNode, schedulerConfig, waitForNodesReady } from '../e2e/stack.ts';

const NODES = Number(process.env.BENCH_NODES ?? 1000);
const PODS = Number(process.env.BENCH_PODS ?? 2000);

async function parallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

async function createPods(core: CoreV1Api, namespace: string, schedulerName: string): Promise<void> {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'default' } } });
  const names = Array.from({ length: PODS }, (_, i) => `p-${i}`);
  await parallel(names, 32, (name) =>
    core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name },
        spec: {
          schedulerName,
          containers: [
            {
              name: 'c',
              image: 'registry.example/x',
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { 'nvidia.com/gpu': '1' } },
            },
          ],
        },
      },
    }),
  );
}

async function timeUntilBound(core: CoreV1Api, namespace: string): Promise<number> {
  const started = performance.now();
  for (;;) {
    // Only the pods still unbound, one at a time with the remaining count, so that measuring costs the API server
    // almost nothing while the scheduler works.
    const page = await core.listNamespacedPod({ namespace, fieldSelector: 'spec.nodeName=', limit: 1 });
    const unbound = page.items.length + (page.metadata?.remainingItemCount ?? 0);
    if (unbound === 0) return (performance.now() - started) / 1000;
    if (performance.now() - started > 600_000)
      throw new Error(`${unbound} of ${PODS} pods still unbound after 10 minutes`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const cluster = await startCluster({ controllerManager: true, kwok: true, log: (l) => console.log(l) });
try {
  const admin = new KubeConfig();
  admin.loadFromString(cluster.kubeconfigText('admin'));
  const core = admin.makeApiClient(CoreV1Api);
  console.log(`creating ${NODES} GPU nodes`);
  const names = Array.from({ length: NODES }, (_, i) => `gpu-${String(i).padStart(4, '0')}`);
  await parallel(names, 16, (name) =>
    createFakeNode(
      core,
      {
        metadata: {
          name,
          labels: {
            'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3',
            'nvidia.com/gpu.count': '8',
            'nvidia.com/gpu.sharing-strategy': 'none',
          },
        },
      },
      { cpu: '96', memory: '1Ti', pods: '110', 'nvidia.com/gpu': '8' },
      false,
    ),
  );
  await waitForNodesReady(core, names, 300_000);

  console.log(`baseline: ${PODS} pods, kube-scheduler alone`);
  await createPods(core, 'baseline', 'default-scheduler');
  const percentage = process.env.BENCH_PERCENTAGE ? `percentageOfNodesToScore: ${process.env.BENCH_PERCENTAGE}\n` : '';
  await cluster.startScheduler(
    `apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n${percentage}profiles:\n- schedulerName: default-scheduler\n`,
  );
  const alone = await timeUntilBound(core, 'baseline');
  await cluster.stopScheduler();

  console.log(`with the extender: ${PODS} pods, kube-scheduler + Tessera extender (filter, prioritize, bind)`);
  // The extender runs as its own process, as it does in a cluster.
  const port = await freePort();
  const extender = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []),
      fileURLToPath(new URL('../../cli/tessera.ts', import.meta.url)),
      'serve',
      'extender',
      '--kubeconfig',
      cluster.kubeconfigFor('system:serviceaccount:tessera-system:tessera-extender'),
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  for (let i = 0; i < 300; i++) {
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await createPods(core, 'tessera', 'tessera-scheduler');
  await cluster.startScheduler(
    schedulerConfig(port).replace(
      'kind: KubeSchedulerConfiguration\n',
      `kind: KubeSchedulerConfiguration\n${percentage}`,
    ),
  );
  const withExtender = await timeUntilBound(core, 'tessera');
  await cluster.stopScheduler();
  extender.kill('SIGTERM');
  await new Promise((r) => extender.once('exit', r));

  const rateAlone = PODS / alone;
  const rateWith = PODS / withExtender;
  console.log(
    `kube-scheduler alone:          ${rateAlone.toFixed(0)} pods/s (${alone.toFixed(1)} s for ${PODS} pods on ${NODES} nodes)`,
  );
  console.log(`kube-scheduler + extender:     ${rateWith.toFixed(0)} pods/s (${withExtender.toFixed(1)} s)`);
  console.log(
    `ratio: ${(rateWith / rateAlone).toFixed(2)} (goal >= 0.5): ${rateWith / rateAlone >= 0.5 ? 'PASS' : 'FAIL'}`,
  );
  process.exitCode = rateWith / rateAlone >= 0.5 ? 0 : 1;
} finally {
  await cluster.stop();
}
