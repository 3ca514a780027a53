// The extender with KubeVirt's virt-launcher pods over HTTP (kube-scheduler's wire format): passthrough and vGPU
// nodes read as the vm-devices mode (the devices KubeVirt's GPU device plugins advertise), filter and prioritize by
// what their devices still hold, bind commits the devices, and a live migration's target pod is not charged twice.
// The pods are what the webhook admitted: virt-launcher pods shaped as virt-controller renders them, through
// Tessera's own admission pipeline.

import t from 'tap';
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { staticClusterView } from '../../core/admission/cluster-view.ts';
import { runAdmission } from '../../core/admission/pipeline.ts';
import type { KubeNode, KubePod } from '../../core/kube-objects.ts';
import { compilePolicy } from '../../core/policy/compile.ts';
import { SchedulingState } from '../../core/scheduling/state.ts';
import { fragmentationAware } from '../../core/scoring/fragmentation-aware.ts';
import { createExtenderApp } from '../../extender/app.ts';
import { ApiError, type ClusterWriter } from '../../extender/cluster-writer.ts';
import { ExtenderMetrics } from '../../extender/metrics.ts';
import { ExtenderScheduler } from '../../extender/scheduler.ts';
import { CONFIG, NAMESPACES, podRequest } from '../fixtures/admission.ts';
import { KUBEVIRT_CONTROLLER, launcherPod, type LauncherOptions } from '../fixtures/kubevirt.ts';
import { exclusiveH100, node } from '../fixtures/nodes.ts';

const log = pino({ level: 'silent' });
const compiled = compilePolicy([
  {
    name: 'policy.yaml',
    text: readFileSync(new URL('../../../shared/examples/vm/policy.yaml', import.meta.url), 'utf8'),
  },
]);
if (!compiled.ok) throw new Error(JSON.stringify(compiled.problems));
const POLICY = compiled.policy;
const H100 = 'nvidia.com/GH100_H100_SXM5_80GB';
const L40S_12Q = 'nvidia.com/NVIDIA_L40S-12Q';

/** A GPU Operator node in vm-passthrough or vm-vgpu mode: no nvidia.com/gpu, the sandbox device plugin's names. */
function vmNode(name: string, pool: string, config: string, devices: Record<string, string>): KubeNode {
  const n = node({
    name,
    labels: { 'tessera.io/pool': pool, 'nvidia.com/gpu.workload.config': config, 'kubevirt.io/schedulable': 'true' },
    allocatable: {
      'devices.kubevirt.io/kvm': '1k',
      'devices.kubevirt.io/tun': '1k',
      'devices.kubevirt.io/vhost-net': '1k',
      ...devices,
    },
  });
  n.spec = { taints: [{ key: 'tessera.io/pool', value: pool, effect: 'NoSchedule' }] };
  return n;
}

class Writer implements ClusterWriter {
  readonly pods = new Map<string, KubePod>();
  async readPod(ns: string, name: string) {
    return structuredClone(this.pods.get(`${ns}/${name}`) ?? null);
  }
  async bindPod(ns: string, name: string, uid: string, node: string, annotations: Readonly<Record<string, string>>) {
    const p = this.pods.get(`${ns}/${name}`);
    if (!p || p.metadata?.uid !== uid) throw new ApiError(404, `pods "${name}" not found`);
    this.pods.set(`${ns}/${name}`, {
      ...p,
      metadata: { ...p.metadata, annotations: { ...p.metadata?.annotations, ...annotations } },
      spec: { ...p.spec, nodeName: node },
      status: { phase: 'Running' },
    });
  }
  async setNodeResources() {}
  async labelPod() {}
}

async function start(t: { teardown(fn: () => unknown): void }) {
  const state = new SchedulingState();
  state.setPolicy(POLICY);
  for (const ns of NAMESPACES) state.upsertNamespace(ns);
  for (const n of [
    vmNode('pt-0', 'vm-h100', 'vm-passthrough', { [H100]: '8' }),
    vmNode('pt-1', 'vm-h100', 'vm-passthrough', { [H100]: '8' }),
    vmNode('vg-0', 'vm-l40s-vgpu', 'vm-vgpu', { [L40S_12Q]: '16' }),
    exclusiveH100('e1', 8),
  ])
    state.upsertNode(n);
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
  const app = createExtenderApp({ scheduler, metrics, log, notReady: () => null, prefix: '/scheduler' });
  const server: Server = createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/scheduler`;
  /** Admits a launcher pod through the webhook's pipeline (as KubeVirt's controller) and hands it to the informer. */
  const admitted = (o: LauncherOptions, concurrent = false): KubePod => {
    const raw = launcherPod(o);
    const r = runAdmission(
      podRequest(raw, { user: KUBEVIRT_CONTROLLER }),
      POLICY,
      // concurrent: admitted by another webhook replica before the informers showed it the pods before it.
      staticClusterView(NAMESPACES, concurrent ? [] : [...writer.pods.values()]),
      CONFIG,
    );
    if (!r.response.allowed) throw new Error(r.response.status?.message);
    const p = { ...(r.object as KubePod), metadata: { ...(r.object as KubePod).metadata, resourceVersion: '1' } };
    writer.pods.set(`${p.metadata?.namespace}/${p.metadata?.name}`, p);
    state.upsertPod(p);
    return p;
  };
  const call = async (verb: string, body: unknown) => {
    const res = await fetch(`${url}/${verb}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  const bind = async (p: KubePod, node: string) => {
    const r = await call('bind', {
      PodName: p.metadata?.name,
      PodNamespace: p.metadata?.namespace,
      PodUID: p.metadata?.uid,
      Node: node,
    });
    const bound = writer.pods.get(`${p.metadata?.namespace}/${p.metadata?.name}`)!;
    if (r.body.Error === '') state.upsertPod(bound);
    return r.body.Error as string;
  };
  /** The pod is gone (deleted, or finished and collected): from the API and the informer. */
  const remove = (p: KubePod) => {
    writer.pods.delete(`${p.metadata?.namespace}/${p.metadata?.name}`);
    state.removePod(p.metadata!.uid!);
  };
  return { state, writer, call, bind, admitted, remove };
}

t.test('passthrough and vGPU nodes are read as vm-devices nodes', async (t) => {
  const env = await start(t);
  t.match(env.state.nodes.get('pt-0'), { mode: 'vm-devices', usable: true, resources: { [H100]: 8 } });
  t.equal(env.state.nodes.get('pt-0')!.gpus.length, 8, 'passthrough devices are the physical GPUs');
  t.match(env.state.nodes.get('vg-0'), { mode: 'vm-devices', usable: true, resources: { [L40S_12Q]: 16 } });
  t.notOk('devices.kubevirt.io/kvm' in env.state.nodes.get('pt-0')!.resources, 'KubeVirt’s own devices are no GPUs');
});

t.test('filter, prioritize and bind place launcher pods by what their devices still hold', async (t) => {
  const env = await start(t);
  const a = env.admitted({ vmName: 'a', devices: { [H100]: 6 } });
  t.equal(a.spec?.containers?.[0]?.resources?.limits?.['tessera.io/devices'], '1', 'the marker that reaches us');
  const f = await env.call('filter', { Pod: a, NodeNames: ['pt-0', 'pt-1', 'vg-0', 'e1'] });
  t.same(f.body.NodeNames, ['pt-0', 'pt-1']);
  t.match(f.body.FailedAndUnresolvableNodes, { 'vg-0': /^NodeNotInPool/, e1: /^NodeNotInPool/ });
  t.equal(await env.bind(a, 'pt-0'), '');
  t.equal(env.state.ledger.usage('pt-0').resources.get(H100), 6);

  const b = env.admitted({ vmName: 'b', devices: { [H100]: 3 } });
  const fb = await env.call('filter', { Pod: b, NodeNames: ['pt-0', 'pt-1'] });
  t.same(fb.body.NodeNames, ['pt-1']);
  t.match(fb.body.FailedNodes, {
    'pt-0': /^GpusExhausted: pod needs 3 nvidia.com\/GH100_H100_SXM5_80GB, node has 2 free of 8/,
  });
  t.match(await env.bind(b, 'pt-0'), /^GpusExhausted/, 'bind re-checks on the freshest state');
  const small = env.admitted({ vmName: 'c', devices: { [H100]: 2 } });
  const prio = await env.call('prioritize', { Pod: small, NodeNames: ['pt-0', 'pt-1'] });
  const score = Object.fromEntries(prio.body.map((h: { Host: string; Score: number }) => [h.Host, h.Score]));
  t.ok(score['pt-0'] > score['pt-1'], `best fit fills pt-0 first (${JSON.stringify(score)})`);

  const v = env.admitted({ vmName: 'v', devices: { [L40S_12Q]: 1 } });
  const fv = await env.call('filter', { Pod: v, NodeNames: ['pt-0', 'vg-0'] });
  t.same(fv.body.NodeNames, ['vg-0']);
  t.equal(await env.bind(v, 'vg-0'), '');
  t.equal(env.state.ledger.tenantEquivalents('research'), 6.25, '6 H100s and a quarter L40S');
});

t.test('quota at bind: a migration target is not charged twice, another VM is refused', async (t) => {
  const env = await start(t);
  const a = env.admitted({ vmName: 'a', devices: { [H100]: 6 } });
  t.equal(await env.bind(a, 'pt-0'), '');
  const b = env.admitted({ vmName: 'b', devices: { [H100]: 6 } });
  t.equal(await env.bind(b, 'pt-1'), '');
  t.equal(env.state.ledger.tenantEquivalents('research'), 12, 'at quota');
  // Another VM that two webhook replicas admitted at once: bind, the single commit point, refuses it.
  const c = env.admitted({ vmName: 'c', devices: { [H100]: 2 } }, true);
  t.match(
    await env.bind(c, 'pt-0'),
    /^QuotaExceeded: tenant research holds 12 of its 12 GPU-equivalents; this pod needs 2/,
  );
  // The target of a's live migration: the same VMI, the same devices, created by virt-controller.
  const target = env.admitted({ vmName: 'a', devices: { [H100]: 6 }, migrationJob: { uid: 'mig-1', name: 'a-mig' } });
  t.equal((await env.bind(target, 'pt-1')) === '' ? 'bound' : 'refused', 'refused', 'pt-1 has 2 devices free');
  env.remove(b);
  t.equal(await env.bind(target, 'pt-1'), '', 'bound: the VM holds 6 either way');
  t.equal(env.state.ledger.tenantEquivalents('research'), 6, 'source and target count once');
  env.remove(a);
  t.equal(env.state.ledger.tenantEquivalents('research'), 6, 'after the migration the target holds the VM');
});
