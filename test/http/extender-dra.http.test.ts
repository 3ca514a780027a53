// The extender over HTTP on DRA nodes: pods with claims (marked for the extender), pods with nvidia.com/gpu on nodes
// whose GPUs only DRA publishes (KEP-5004), filter by pool and devices, prioritize by the same binpack and MIG
// fragmentation idea, bind with no fraction annotations, quota at bind counting claims.

import t from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { KubePod } from '../../core/kube-objects.ts';
import { compilePolicy } from '../../core/policy/compile.ts';
import { SchedulingState } from '../../core/scheduling/state.ts';
import { fragmentationAware } from '../../core/scoring/fragmentation-aware.ts';
import { createExtenderApp } from '../../extender/app.ts';
import type { ClusterWriter } from '../../extender/cluster-writer.ts';
import { ExtenderMetrics } from '../../extender/metrics.ts';
import { ExtenderScheduler } from '../../extender/scheduler.ts';
import {
  claim,
  claimTemplate,
  DRA_POLICY_TEXT,
  exactly,
  gpuDevice,
  migDevice,
  nodeSlice,
  NVIDIA_CLASSES,
  profileSelector,
} from '../fixtures/dra.ts';
import { fractionH100, node } from '../fixtures/nodes.ts';
import { pod } from '../fixtures/pods.ts';

const log = pino({ level: 'silent' });

class Writer implements ClusterWriter {
  readonly pods = new Map<string, KubePod>();
  readonly calls: string[] = [];
  async readPod(ns: string, name: string) {
    return structuredClone(this.pods.get(`${ns}/${name}`) ?? null);
  }
  async bindPod(ns: string, name: string, _uid: string, nodeName: string) {
    const p = this.pods.get(`${ns}/${name}`)!;
    p.spec!.nodeName = nodeName;
    p.status = { ...p.status, phase: 'Running' };
    this.calls.push(`bind ${name} ${nodeName}`);
  }
  async setNodeResources() {}
  async labelPod() {}
}

async function start(t: { teardown(fn: () => unknown): void }) {
  const compiled = compilePolicy([{ name: 'policy.yaml', text: DRA_POLICY_TEXT }]);
  if (!compiled.ok) throw new Error('policy');
  const state = new SchedulingState();
  state.setPolicy(compiled.policy);
  state.upsertNamespace({ metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } });
  for (const c of NVIDIA_CLASSES) state.dra.upsertClass(c);
  state.dra.upsertTemplate(claimTemplate('two', 'vision', [exactly('gpu', 'gpu.nvidia.com', { count: 2 })]));
  state.dra.upsertTemplate(
    claimTemplate('mig', 'vision', [exactly('mig', 'mig.nvidia.com', { selectors: profileSelector('1g.10gb') })]),
  );
  for (const name of ['dra-0', 'dra-1', 'mig-0'])
    state.upsertNode(node({ name, labels: { 'tessera.io/pool': 'dra-h100' } }));
  state.upsertNode(fractionH100('h100-0', 8, { labels: { 'tessera.io/pool': 'shared-h100' } }));
  state.dra.upsertSlice(
    nodeSlice(
      'dra-0',
      [0, 1, 2, 3].map((i) => gpuDevice('dra-0', i)),
    ),
  );
  state.dra.upsertSlice(
    nodeSlice(
      'dra-1',
      [0, 1, 2, 3, 4, 5, 6, 7].map((i) => gpuDevice('dra-1', i)),
    ),
  );
  state.dra.upsertSlice(
    nodeSlice(
      'mig-0',
      [0, 1].flatMap((g) => ['1g.10gb', '1g.10gb', '3g.40gb'].map((p, i) => migDevice('mig-0', g, p, i))),
    ),
  );
  const writer = new Writer();
  const metrics = new ExtenderMetrics();
  const scheduler = new ExtenderScheduler({
    state,
    strategy: fragmentationAware,
    // Every feasible node and every other node's reason: what these tests check (the single best answer has its own).
    filterAnswers: 'all',
    writer,
    metrics,
    log,
    podLookup: (ns, name) => writer.pods.get(`${ns}/${name}`),
  });
  const app = createExtenderApp({ scheduler, metrics, log, notReady: () => null });
  const server: Server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const call = async (verb: string, body: unknown) => {
    const res = await fetch(`${url}/${verb}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return (await res.json()) as any;
  };
  /** A claim pod as the webhook leaves it and kube-scheduler sends it (its template claim generated). */
  const claimPod = (name: string, template: string) => {
    const p = pod(name).ns('vision').uid(`uid-${name}`).annotate('tessera.io/pool', 'dra-h100').build();
    p.spec!.schedulerName = 'tessera-scheduler';
    p.spec!.resourceClaims = [{ name: 'gpu', resourceClaimTemplateName: template }];
    p.spec!.containers![0]!.resources = { limits: { 'tessera.io/dra-claims': '1' }, claims: [{ name: 'gpu' }] };
    const generated = `${name}-gpu-abc12`;
    p.status = { phase: 'Pending', resourceClaimStatuses: [{ name: 'gpu', resourceClaimName: generated }] };
    p.metadata!.resourceVersion = '1';
    state.dra.upsertClaim({
      ...claim(generated, 'vision', []),
      spec: state.dra.resourceClaimTemplate('vision', template)!.spec!.spec!,
    });
    writer.pods.set(`vision/${name}`, p);
    return p;
  };
  return { state, writer, call, claimPod };
}

t.test('the extender filters, ranks and binds pods with DRA claims', async (t) => {
  const env = await start(t);
  const names = ['dra-0', 'dra-1', 'mig-0', 'h100-0', 'ghost'];

  await t.test('a claim pod is feasible on the DRA nodes of its pool with room, with a reason elsewhere', async (t) => {
    const p = env.claimPod('train', 'two');
    const f = await env.call('filter', { Pod: p, NodeNames: names });
    t.same(f.NodeNames, ['dra-0', 'dra-1']);
    t.match(f.FailedAndUnresolvableNodes, {
      'mig-0': /^MigProfileAbsent: node mig-0 publishes no whole-GPU DRA devices/,
      'h100-0': /^NodeNotInPool/,
      ghost: /^UnknownNode/,
    });
    const pr = await env.call('prioritize', { Pod: p, NodeNames: ['dra-0', 'dra-1'] });
    const score = Object.fromEntries(pr.map((h: { Host: string; Score: number }) => [h.Host, h.Score]));
    t.ok(score['dra-0'] > score['dra-1'], 'the node the pod fills more ranks first');
    const b = await env.call('bind', { PodName: 'train', PodNamespace: 'vision', PodUID: 'uid-train', Node: 'dra-0' });
    t.same(b, { Error: '' });
    t.same(env.writer.calls, ['bind train dra-0'], 'no fraction annotations on a DRA node');
  });

  await t.test('allocated claims take their devices; MIG pods pack onto GPUs in MIG use', async (t) => {
    env.state.dra.upsertClaim({
      ...claim('train-gpu-abc12', 'vision', [exactly('gpu', 'gpu.nvidia.com', { count: 2 })]),
      status: {
        allocation: {
          devices: {
            results: ['gpu-0', 'gpu-1', 'gpu-2'].map((device) => ({
              request: 'gpu',
              driver: 'gpu.nvidia.com',
              pool: 'dra-0',
              device,
            })),
          },
        },
      },
    });
    const f = await env.call('filter', { Pod: env.claimPod('next', 'two'), NodeNames: ['dra-0', 'dra-1'] });
    t.same(f.NodeNames, ['dra-1']);
    t.match(f.FailedNodes, { 'dra-0': /^GpusExhausted/ });
    const native = pod('n').ns('vision').annotate('tessera.io/pool', 'dra-h100').limit('nvidia.com/gpu', '1').build();
    const nf = await env.call('filter', { Pod: native, NodeNames: ['dra-0', 'dra-1'] });
    t.same(nf.NodeNames, ['dra-0', 'dra-1'], 'nvidia.com/gpu on DRA nodes is never refused as GPU-less');
    const mf = await env.call('filter', { Pod: env.claimPod('small', 'mig'), NodeNames: ['mig-0', 'dra-1'] });
    t.same(mf.NodeNames, ['mig-0']);
    t.match(mf.FailedAndUnresolvableNodes, {
      'dra-1': /^MigProfileAbsent: node dra-1 publishes no 1g.10gb MIG devices/,
    });
  });

  await t.test('bind re-checks quota with the pod claims counted', async (t) => {
    for (let i = 0; i < 5; i++) {
      const held = env.claimPod(`held-${i}`, 'two');
      held.spec!.nodeName = 'dra-1';
      held.status = { ...held.status, phase: 'Running' };
      env.state.upsertPod(held);
    }
    env.claimPod('over', 'two');
    const b = await env.call('bind', { PodName: 'over', PodNamespace: 'vision', PodUID: 'uid-over', Node: 'dra-1' });
    t.match(b.Error, /QuotaExceeded: tenant research holds 12 of its 12 GPU-equivalents; this pod needs 2/);
  });
});

t.test('preempt on a DRA pool: the fewest victims whose claims free the devices the pod needs', async (t) => {
  const env = await start(t);
  // dra-0 has 4 GPUs: one pod's claim holds two of them, two pods hold one each; all at priority 0.
  const hold = (name: string, devices: string[]) => {
    const p = pod(name).ns('vision').uid(`uid-${name}`).annotate('tessera.io/pool', 'dra-h100').build();
    p.spec!.schedulerName = 'tessera-scheduler';
    p.spec!.nodeName = 'dra-0';
    p.spec!.priority = 0;
    p.spec!.containers![0]!.resources = { limits: { 'tessera.io/dra-claims': '1' } };
    p.status = { phase: 'Running' };
    env.writer.pods.set(`vision/${name}`, p);
    env.state.upsertPod(p);
    const c = claim(`${name}-gpu`, 'vision', [exactly('gpu', 'gpu.nvidia.com', { count: devices.length })]);
    env.state.dra.upsertClaim({
      ...c,
      status: {
        allocation: {
          devices: {
            results: devices.map((device) => ({ request: 'gpu', driver: 'gpu.nvidia.com', pool: 'dra-0', device })),
          },
        },
        reservedFor: [{ resource: 'pods', name, uid: `uid-${name}` }],
      },
    });
  };
  hold('pair', ['gpu-0', 'gpu-1']);
  hold('one', ['gpu-2']);
  hold('other', ['gpu-3']);
  const urgent = env.claimPod('urgent', 'two');
  urgent.spec!.priority = 1000;
  // kube-scheduler's node-level dry run cannot see devices: it proposes two of the single-GPU pods.
  const proposed = { 'dra-0': { Pods: [{ UID: 'uid-one' }, { UID: 'uid-other' }], NumPDBViolations: 0 } };
  const r = await env.call('preempt', { Pod: urgent, NodeNameToMetaVictims: proposed });
  t.same(r, { NodeNameToMetaVictims: { 'dra-0': { Pods: [{ UID: 'uid-pair' }], NumPDBViolations: 0 } } });
  urgent.spec!.priority = 0;
  t.same(
    await env.call('preempt', { Pod: urgent, NodeNameToMetaVictims: proposed }),
    { NodeNameToMetaVictims: {} },
    'nothing of lower priority: the node is no candidate',
  );
});
