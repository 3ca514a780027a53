import t from 'tap';
import { readFileSync } from 'node:fs';
import { compilePolicy, formatProblem } from '../../../../core/policy/compile.ts';
import { isolatedTenants, poolNamed, ruleApplies, tenantNamed } from '../../../../core/policy/model.ts';

const EXAMPLE = readFileSync(new URL('../../../../../shared/examples/policy.yaml', import.meta.url), 'utf8');
const file = (text: string, name = 'policy.yaml') => ({ name, text });

t.test('the shared example policy is accepted as it is, with the meaning of its comments', async (t) => {
  const r = compilePolicy([file(EXAMPLE)]);
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join('\n'));
  const p = r.policy;
  t.equal(p.schedulerName, 'tessera-scheduler');
  t.same(p.admins, { groups: ['platform-admins'], users: ['alice@acme.example'] });
  t.same(
    p.pools.map((x) => [x.name, x.fractionMode]),
    [
      ['shared-h100', 'fraction'],
      ['a100-mig', 'mig'],
      ['l4-timesliced', 'time-slicing'],
      ['sovereign-eu', 'none'],
    ],
  );
  t.match(poolNamed(p, 'a100-mig'), { gpuModel: 'A100-SXM4-80GB' });
  t.match(poolNamed(p, 'l4-timesliced'), { resource: 'nvidia.com/gpu.shared', replicas: 4 });
  t.same(poolNamed(p, 'sovereign-eu')!.nodeSelector, {
    'tessera.io/pool': 'sovereign-eu',
    'topology.kubernetes.io/region': 'eu-central',
  });
  t.match(tenantNamed(p, 'research'), {
    quotaGpus: 12,
    maxGpusPerPod: 8,
    shareGpuWith: 'any',
    pools: ['shared-h100', 'a100-mig', 'l4-timesliced'],
  });
  t.match(tenantNamed(p, 'payments-ml'), {
    quotaGpus: 4,
    maxGpusPerPod: 2,
    shareGpuWith: 'same-tenant',
    priorityClasses: ['payments-serving'],
  });
  t.same([...isolatedTenants(p)], ['payments-ml']);
  t.same(
    p.rules.map((r) => [r.name, r.kind, r.action]),
    [
      ['gpu-request-bounds', 'GpuRequest', 'enforce'],
      ['no-gpu-bypass', 'GpuBypass', 'enforce'],
      ['eu-registry-only', 'ImageRegistry', 'enforce'],
      ['chargeback-labels', 'RequiredLabels', 'warn'],
      ['frozen-gpu-intent', 'ImmutableFields', 'enforce'],
      ['gpu-runtime-class', 'RuntimeClass', 'audit'],
    ],
  );
  t.match(p.rules[0], { minMilli: 50, maxMemoryMiB: 81920, requireLimits: true });
  const eu = p.rules[2]!;
  t.ok(ruleApplies(eu, 'payments-ml', 'pay'), 'match.tenants narrows the rule');
  t.notOk(ruleApplies(eu, 'research', 'r'));
  t.ok(ruleApplies(p.rules[0]!, null, 'x'), 'no match means every tenant');
  t.match(p.revision, /^[0-9a-f]{16}$/);
  t.equal(
    compilePolicy([file(EXAMPLE)]).ok &&
      (compilePolicy([file(EXAMPLE)]) as { policy: { revision: string } }).policy.revision,
    p.revision,
    'the revision is a content hash',
  );
});

t.test('JSON files and multi-file policies merge; duplicates across files are refused', async (t) => {
  const json = JSON.stringify({
    apiVersion: 'tessera.io/v1alpha1',
    kind: 'TesseraPolicy',
    metadata: { name: 'extra' },
    spec: { rules: [{ name: 'registry', kind: 'ImageRegistry', action: 'warn', params: { allowed: ['r.example/'] } }] },
  });
  const merged = compilePolicy([file(EXAMPLE), file(json, 'extra.json')]);
  t.ok(merged.ok && merged.policy.rules.some((r) => r.name === 'registry'));
  const dup = compilePolicy([file(EXAMPLE), file(EXAMPLE, 'copy.yaml')]);
  t.notOk(dup.ok);
  t.match(
    dup.ok ? '' : dup.problems.map(formatProblem).join('\n'),
    /pool "shared-h100" is already defined in copy.yaml/,
  );
});

t.test('schema errors name the file, the path and the fix', async (t) => {
  const bad = EXAMPLE.replace('fractionMode: fraction', 'fractionMode: slices')
    .replace('action: warn', 'action: maybe')
    .replace('maxGpusPerPod: 8', 'maxGpusPerPod: 8\n      maxGPUs: 9');
  const r = compilePolicy([file(bad, 'team.yaml')]);
  t.notOk(r.ok);
  const text = r.ok ? '' : r.problems.map(formatProblem).join('\n');
  t.match(
    text,
    /team.yaml: \/spec\/pools\/0\/fractionMode: must be one of "fraction", "mig", "time-slicing", "mps", "none"/,
  );
  t.match(text, /\/spec\/rules\/3\/action: must be one of "enforce", "warn", "audit"/);
  t.match(text, /\/spec\/tenants\/0: unknown field "maxGPUs"; remove it or check its spelling/);
  t.match(compilePolicy([file('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec: {}\n')]), {
    ok: false,
    problems: [{ message: /must be "tessera.io\/v1alpha1"/ }],
  });
  t.match(compilePolicy([file('spec: [unclosed')]), { ok: false, problems: [{ message: /not valid YAML/ }] });
  t.match(compilePolicy([file('{"broken": ')]), { ok: false, problems: [{ message: /not valid JSON/ }] });
  t.match(compilePolicy([]), { ok: false, problems: [{ message: /no policy files found/ }] });
});

t.test(
  'semantic checks: unknown pools and tenants, overlapping pools, impossible MIG pools, bad regexes',
  async (t) => {
    const cases: [string, string, RegExp][] = [
      [
        'unknown pool',
        EXAMPLE.replace('pools: [sovereign-eu, shared-h100]', 'pools: [sovereign-eu, gpu-farm]'),
        /pool "gpu-farm" is not defined/,
      ],
      [
        'unknown tenant in match',
        EXAMPLE.replace('match: { tenants: [payments-ml] }', 'match: { tenants: [payments] }'),
        /tenant "payments" is not defined/,
      ],
      [
        'overlap',
        EXAMPLE.replace('nodeSelector: { tessera.io/pool: a100-mig }', 'nodeSelector: { gpu: a100 }'),
        /pools "shared-h100" and "a100-mig" can select the same node/,
      ],
      ['MIG on L4', EXAMPLE.replace('gpuModel: A100-SXM4-80GB', 'gpuModel: L4'), /L4 GPUs do not support MIG/],
      [
        'unknown model',
        EXAMPLE.replace('gpuModel: A100-SXM4-80GB', 'gpuModel: Z9000'),
        /"Z9000" is not a GPU model Tessera knows/,
      ],
      ['bad regex', EXAMPLE.replace('team: ".+"', 'team: "(+"'), /is not a valid regular expression/],
      [
        'mig without model',
        EXAMPLE.replace('      gpuModel: A100-SXM4-80GB\n', ''),
        /missing required field "gpuModel"/,
      ],
    ];
    for (const [name, text, message] of cases) {
      const r = compilePolicy([file(text)]);
      t.notOk(r.ok, name);
      t.match(r.ok ? '' : r.problems.map(formatProblem).join('\n'), message, name);
    }
  },
);
