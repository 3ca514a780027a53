// The soak's pure parts: the fault plan, the end-of-run checks, how refusals are read, the workload stream and the
// policy corruptions. The soak itself runs on a real control plane (npm run soak:short).

import t from 'tap';
import type { KubePod } from '../../../core/kube-objects.ts';
import { compilePolicy } from '../../../core/policy/compile.ts';
import { examplePolicy, NAMESPACES } from '../../fixtures/admission.ts';
import { fractionH100 } from '../../fixtures/nodes.ts';
import { pod } from '../../fixtures/pods.ts';
import { FAULT_KINDS, planFaults } from '../../soak/fault-plan.ts';
import { gaugeFindings, lostPods, metricSamples, pendingFindings } from '../../soak/final-checks.ts';
import { classifyRefusal } from '../../soak/load.ts';
import { corruptions } from '../../soak/policy-files.ts';
import { POLICY_FILES } from '../../soak/topology.ts';
import { WorkloadStream } from '../../soak/workloads.ts';

const policy = examplePolicy();

t.test('the fault plan has every kind, the rotations in calendar count, and keeps its gaps', async (t) => {
  const short = planFaults({ seed: 3, fromMs: 8_000, toMs: 78_000, minGapMs: 6_500, meanGapMs: 6_000, rotations: 4 });
  t.same(new Set(short.map((f) => f.kind)), new Set(FAULT_KINDS), 'every kind at least once');
  t.equal(short.filter((f) => f.kind === 'cert-rotation').length, 4);
  for (let i = 1; i < short.length; i++) t.ok(short[i]!.atMs - short[i - 1]!.atMs >= 6_500, `gap ${i}`);
  t.ok(short[0]!.atMs >= 8_000 && short[short.length - 1]!.atMs <= 78_000, 'inside the window');
  t.same(
    planFaults({ seed: 3, fromMs: 8_000, toMs: 78_000, minGapMs: 6_500, meanGapMs: 6_000, rotations: 4 }),
    short,
    'a seed names one plan',
  );
  const long = planFaults({
    seed: 1,
    fromMs: 30_000,
    toMs: 840_000,
    minGapMs: 20_000,
    meanGapMs: 45_000,
    rotations: 4,
  });
  t.ok(long.length >= 17, `${long.length} faults in 13.5 minutes`);
  t.throws(
    () => planFaults({ seed: 1, fromMs: 0, toMs: 10_000, minGapMs: 5_000, meanGapMs: 5_000, rotations: 1 }),
    /need 8 slots/,
  );
});

function fractionPod(name: string, ns: string, node: string, gpu: number, milli: number): KubePod {
  return pod(name)
    .ns(ns)
    .gpuMilli(milli)
    .annotate('tessera.io/assignment', JSON.stringify({ node, gpus: [{ index: gpu, milli, memoryMiB: 0 }] }))
    .annotate('tessera.io/visible-devices', String(gpu))
    .boundTo(node)
    .build();
}

t.test('the extender gauges are compared with what the API shows', async (t) => {
  const snapshot = {
    time: '2026-11-27T00:00:00Z',
    nodes: [fractionH100('h', 2)],
    pods: [fractionPod('a', 'research-a', 'h', 0, 250), fractionPod('b', 'pay', 'h', 1, 500)],
    namespaces: NAMESPACES,
  };
  const metrics = [
    '# HELP tessera_gpu_allocated_milli Compute reserved per GPU of fraction nodes (milli)',
    '# TYPE tessera_gpu_allocated_milli gauge',
    'tessera_gpu_allocated_milli{node="h",gpu="0"} 250',
    'tessera_gpu_allocated_milli{node="h",gpu="1"} 500',
    'tessera_tenant_gpu_equivalents{tenant="research"} 0.25',
    'tessera_tenant_gpu_equivalents{tenant="payments-ml"} 0.5',
  ].join('\n');
  t.same(metricSamples(metrics, 'tessera_gpu_allocated_milli').get('gpu=1,node=h'), 500);
  t.same(gaugeFindings(metrics, snapshot, policy), []);
  const stale = metrics.replace('gpu="1"} 500', 'gpu="1"} 750').replace(/tessera_tenant.*research.*\n/, '');
  t.match(gaugeFindings(stale, snapshot, policy), [
    { subject: 'gpu=1,node=h', message: /is 750 but the API shows 500/ },
    { subject: 'tenant=research', message: /is 0 but the API shows 0.25/ },
  ]);
  // A GPU the gauges never mention reads as 0; a finished pod holds nothing.
  const done = fractionPod('c', 'research-a', 'h', 1, 250);
  done.status = { phase: 'Succeeded' };
  t.same(gaugeFindings(metrics, { ...snapshot, pods: [...snapshot.pods, done] }, policy), []);
});

t.test('a pending pod needs a reason, and must not fit', async (t) => {
  const nodes = [fractionH100('h', 2, { labels: { 'tessera.io/pool': 'shared-h100' } })];
  const waiting = (name: string, milli: number, message: string | null): KubePod => {
    const p = pod(name).ns('research-a').gpuMilli(milli).annotate('tessera.io/pool', 'shared-h100').build();
    if (message !== null)
      (p as { status?: unknown }).status = {
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message }],
      };
    return p;
  };
  const full = [fractionPod('x', 'research-a', 'h', 0, 1000), fractionPod('y', 'research-a', 'h', 1, 1000)];
  const snapshot = (pods: KubePod[]) => ({ time: '2026-11-27T00:00:00Z', nodes, pods, namespaces: NAMESPACES });
  t.same(pendingFindings(snapshot([...full, waiting('p', 500, '0/1 nodes are available')]), policy), []);
  t.match(pendingFindings(snapshot([...full, waiting('q', 500, null)]), policy), [{ check: 'pending-reason' }]);
  t.match(pendingFindings(snapshot([full[0]!, waiting('r', 500, '0/1 nodes are available')]), policy), [
    { check: 'pending-fits', message: /fits on h \(GPUs 1:500m\)/ },
  ]);
});

t.test('pods KWOK lost: bound and never started, or Running well past their run time', async (t) => {
  const running = (name: string, runFor: string | null, startTime: string): KubePod => {
    const p = pod(name).ns('research-a').gpuMilli(250).boundTo('h').build();
    if (runFor !== null) p.metadata!.annotations = { ...p.metadata!.annotations, 'kwok.tessera.io/run-for': runFor };
    (p as { status?: unknown }).status = { phase: 'Running', startTime };
    return p;
  };
  const bound = (name: string, at: string, node: string | null = 'h'): KubePod => {
    const p = pod(name).ns('research-a').gpuMilli(250).build();
    if (node !== null) p.spec = { ...p.spec, nodeName: node };
    (p as { status?: unknown }).status = {
      phase: 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: at }],
    };
    return p;
  };
  const snapshot = {
    time: '2026-11-27T00:02:00Z',
    nodes: [],
    namespaces: NAMESPACES,
    pods: [
      running('lost', '10.250s', '2026-11-27T00:00:00Z'),
      running('on-time', '90.999s', '2026-11-27T00:00:00Z'),
      running('resident', null, '2026-11-27T00:00:00Z'),
      bound('never-started', '2026-11-27T00:00:30Z'),
      bound('just-bound', '2026-11-27T00:01:50Z'),
      bound('unbound', '2026-11-27T00:00:00Z', null),
    ],
  };
  t.same(
    lostPods(snapshot, 30_000).map((p) => p.metadata?.name),
    ['lost', 'never-started'],
  );
});

t.test('refusals are read from the API error', async (t) => {
  const denied = (message: string, code = 403) => ({ code, body: JSON.stringify({ message }) });
  t.match(
    classifyRefusal(
      denied(
        'admission webhook "validate.tessera.io" denied the request: Tessera denied this request (1 problem):\n- [tessera/quota] tenant research has a quota of 12',
      ),
    ),
    { cause: 'quota', rules: ['tessera/quota'] },
  );
  t.match(
    classifyRefusal(denied('Tessera denied this request (2 problems):\n- [eu-registry-only] x\n- [tessera/quota] y')),
    { cause: 'policy', rules: ['eu-registry-only'] },
  );
  t.match(
    classifyRefusal(
      denied(
        'Internal error occurred: failed calling webhook "mutate.tessera.io": Post "https://127.0.0.1:1/mutate": EOF',
        500,
      ),
    ),
    { cause: 'webhook-unreachable' },
  );
  t.match(
    classifyRefusal(
      denied(
        'failed calling webhook "mutate.tessera.io": tls: failed to verify certificate: x509: certificate signed by unknown authority',
        500,
      ),
    ),
    { cause: 'webhook-tls' },
  );
  t.match(classifyRefusal(new Error('connect ECONNREFUSED 127.0.0.1:6443')), { cause: 'api-unavailable' });
  t.match(
    classifyRefusal(denied('pods is forbidden: User "bob@acme.example" cannot create resource "pods" in API group ""')),
    { cause: 'forbidden' },
  );
});

t.test('the workload stream is seeded and covers every mode of sharing', async (t) => {
  const a = new WorkloadStream(7, { short: false });
  const b = new WorkloadStream(7, { short: false });
  const drawn = Array.from({ length: 400 }, () => a.next());
  t.same(
    drawn.map((s) => s.name),
    Array.from({ length: 400 }, () => b.next().name),
  );
  const shapes = new Set(drawn.map((s) => s.shape));
  for (const shape of ['fraction', 'whole', 'mig', 'time-sliced', 'whole-eu', 'job'])
    t.ok(shapes.has(shape as never), shape);
  const pods = drawn.filter((s) => s.kind === 'pod' && !s.bad);
  t.ok(
    pods.some((s) => (s.body as KubePod).spec?.priorityClassName === 'research-interactive'),
    'some preempt',
  );
  t.ok(
    pods.some((s) => (s.body as KubePod).metadata?.annotations?.['kwok.tessera.io/exit'] === 'failed'),
    'some fail',
  );
  t.ok(
    pods.some((s) => s.deleteAfterMs !== null),
    'some are deleted early',
  );
  t.ok(
    pods.every(
      (s) => s.shape === 'never-fits' || (s.body as KubePod).metadata?.annotations?.['kwok.tessera.io/run-for'],
    ),
    'every pod of the load has a run time',
  );
  // KWOK's clock starts at a whole second (status.startTime): a sub-second part keeps the ends off the second's grid.
  const fractions = pods
    .filter((s) => s.shape !== 'never-fits')
    .map((s) =>
      Number(/^\d+\.(\d{3})s$/.exec((s.body as KubePod).metadata?.annotations?.['kwok.tessera.io/run-for'] ?? '')?.[1]),
    );
  t.ok(
    fractions.every((f) => f >= 0 && f < 1000),
    'run times in seconds with milliseconds, a Go duration',
  );
  t.ok(new Set(fractions.map((f) => Math.floor(f / 100))).size >= 8, 'spread over the second');
});

t.test('every corruption of the soak policy files breaks the policy, and the files in force compile', async (t) => {
  const files = Object.entries(POLICY_FILES).map(([name, text]) => ({ name, text }));
  t.ok(compilePolicy(files).ok);
  for (const f of files)
    for (const c of corruptions(f.name, f.text)) {
      if (c.text === f.text) continue;
      const result = compilePolicy(files.map((g) => (g.name === f.name ? { name: g.name, text: c.text } : g)));
      t.notOk(result.ok, `${f.name}: ${c.how}`);
    }
});
