import t from 'tap';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { validateRequest } from '../../../core/admission/validation.ts';
import type { KubePod } from '../../../core/kube-objects.ts';
import { admit, BOB, CONFIG, examplePolicy, view } from '../../fixtures/admission.ts';

// manifests/fraction-nodes/: the smoke-test Job is admissible through Tessera's own rules as a tenant would submit it,
// and its check compares what the runtime exposes with Tessera's assignment; the GPU Operator values set the option.

const read = (name: string) =>
  readFileSync(new URL(`../../../manifests/fraction-nodes/${name}`, import.meta.url), 'utf8');
const policy = examplePolicy();

interface Job {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: { template: KubePod };
}

t.test('the smoke-test Job passes Tessera as a tenant submits it, and is wired to its assignment', async (t) => {
  const job = parseYaml(read('smoke-test-job.yaml')) as Job;
  t.equal(job.kind, 'Job');
  t.equal(job.metadata.namespace, undefined, 'applied with -n into the tenant namespace under test');
  const verdict = validateRequest(
    {
      uid: 'job',
      kind: { group: 'batch', version: 'v1', kind: 'Job' },
      namespace: 'research-a',
      operation: 'CREATE',
      userInfo: BOB,
      object: job,
    },
    policy,
    view(),
    CONFIG,
  );
  t.ok(verdict.allowed, 'the Job is admitted');
  t.same(verdict.violations, [], 'without any finding');

  const template = job.spec.template;
  const p: KubePod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...template.metadata, name: 'tessera-fraction-smoke-test-x', namespace: 'research-a' },
    spec: template.spec,
  };
  const a = admit(p, policy);
  t.equal(a.denial, null, "the Job's pod is admitted");
  t.same(
    (a.verdict?.violations ?? []).map((v) => v.rule),
    [],
    'no warning or audit finding either (runtime class, chargeback labels)',
  );
  const c = a.pod.spec!.containers![0]!;
  t.same(
    c.resources?.limits,
    { memory: '128Mi', 'tessera.io/gpu-milli': '100' },
    'a tenth of a GPU on a fraction pool',
  );
  const wiring = { fieldRef: { fieldPath: "metadata.annotations['tessera.io/visible-devices']" } };
  t.same(
    (c.env ?? []).filter((e) => e.name === 'NVIDIA_VISIBLE_DEVICES' || e.name === 'TESSERA_ASSIGNED_GPUS'),
    [
      { name: 'TESSERA_ASSIGNED_GPUS', valueFrom: wiring },
      { name: 'NVIDIA_VISIBLE_DEVICES', valueFrom: wiring },
    ],
    'the check reads the same annotation that Tessera wires into NVIDIA_VISIBLE_DEVICES',
  );
  const script = ((c as { args?: string[] }).args ?? []).join('\n');
  t.match(script, /nvidia-smi -L/);
  t.match(script, /fail\(\) \{ echo "FAIL: \$\*"; exit 1; \}/, 'exits non-zero on a mismatch');
  t.match(script, /\[ "\$seen" -eq "\$want" \] \|\| fail/);
  t.match(script, /\[ "\$minors" = "\$expected" \] \|\| fail/);
});

t.test(
  'the GPU Operator values set the toolkit to accept NVIDIA_VISIBLE_DEVICES from unprivileged containers',
  async (t) => {
    const values = parseYaml(read('gpu-operator-values.yaml')) as {
      toolkit: { env: { name: string; value: string }[] };
      cdi: { enabled: boolean; nriPluginEnabled: boolean };
    };
    t.same(values.toolkit.env, [{ name: 'ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED', value: 'true' }]);
    t.same(values.cdi, { enabled: false, nriPluginEnabled: false }, 'CDI mode off, NRI plugin mode off');
  },
);

t.test('on a pool served by the node agent the smoke test is admitted and checks the agent’s delivery', async (t) => {
  const { EXAMPLE_POLICY_TEXT } = await import('../../fixtures/admission.ts');
  const agentPolicy = examplePolicy(
    EXAMPLE_POLICY_TEXT.replace('      fractionMode: fraction\n', '      fractionMode: fraction\n      delivery: {}\n'),
  );
  const job = parseYaml(read('smoke-test-job.yaml')) as Job;
  const template = job.spec.template;
  const a = admit(
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { ...template.metadata, name: 'smoke-x', namespace: 'research-a' },
      spec: template.spec,
    },
    agentPolicy,
  );
  t.equal(a.denial, null);
  const c = a.pod.spec!.containers![0]!;
  t.same(c.resources?.limits, { memory: '128Mi', 'tessera.io/gpu-milli': '100' }, 'the kubelet asks the agent');
  t.equal(
    (c.env ?? []).find((e) => e.name === 'NVIDIA_VISIBLE_DEVICES'),
    undefined,
    'no downward-API wiring: the agent delivers',
  );
  const script = ((c as { args?: string[] }).args ?? []).join('\n');
  t.match(script, /agent="\$\{TESSERA_GPU_DELIVERY:-\}"/);
  t.match(
    script,
    /if \[ -z "\$agent" \]; then\n\s+\[ "\$wired" = "\$assigned" \] \|\| fail/,
    'the wiring check is for the downward API only',
  );
  t.match(script, /\[ "\$minors" = "\$expected" \] \|\| fail/, 'the GPU seen is still checked against the assignment');
});
