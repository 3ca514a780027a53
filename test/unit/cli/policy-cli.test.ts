import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pino } from 'pino';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../../../cli/help.ts';
import { PolicyStore } from '../../../server/policy-store.ts';
import { policyCommand } from '../../../cli/policy.ts';
import { auditCommand } from '../../../cli/audit.ts';
import { EXAMPLE_POLICY_TEXT } from '../../fixtures/admission.ts';

const SHARED = new URL('../../../../shared/examples/policy.yaml', import.meta.url).pathname;
const SUITES = new URL('../../policy', import.meta.url).pathname;

async function capture(run: () => number | Promise<number>): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(' '));
  try {
    return { code: await run(), out: lines.join('\n') };
  } finally {
    console.log = original;
  }
}

t.test('policy lint accepts the example and lists every problem of a bad file', async (t) => {
  const ok = await capture(() => policyCommand(['lint', SHARED]));
  t.equal(ok.code, 0);
  t.match(ok.out, /ok: 1 file\(s\), revision [0-9a-f]{16}/);
  const dir = mkdtempSync(join(tmpdir(), 'tessera-lint-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'bad.yaml'),
    EXAMPLE_POLICY_TEXT.replace('gpuModel: A100-SXM4-80GB', 'gpuModel: L4').replace(
      'pools: [sovereign-eu, shared-h100]',
      'pools: [nowhere]',
    ),
  );
  const bad = await capture(() => policyCommand(['lint', dir]));
  t.equal(bad.code, 1);
  t.match(bad.out, /bad.yaml: \/spec\/pools\/1\/gpuModel: L4 GPUs do not support MIG/);
  t.match(bad.out, /pool "nowhere" is not defined/);
  t.match(bad.out, /2 problem\(s\)/);
});

t.test('policy test runs the example suite from files', async (t) => {
  const r = await capture(() => policyCommand(['test', SUITES]));
  t.match(r.out, /11 passed, 0 failed/);
  t.equal(r.code, 0);
});

t.test('policy apply prints one AdmissionReview with the patch, warnings and verdict', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-apply-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'u-42',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      namespace: 'vision',
      operation: 'CREATE',
      userInfo: { username: 'bob@acme.example' },
      object: {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'p', namespace: 'vision', annotations: { 'tessera.io/gpu-fraction': '0.5' } },
        spec: { containers: [{ name: 'c', image: 'registry.example/x:1' }] },
      },
    },
  };
  writeFileSync(join(dir, 'review.json'), JSON.stringify(review));
  const r = await capture(() =>
    policyCommand(['apply', '--policy', SHARED, '--context', join(SUITES, 'cluster.yaml'), join(dir, 'review.json')]),
  );
  const out = JSON.parse(r.out);
  t.match(out, {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid: 'u-42', allowed: true, patchType: 'JSONPatch', warnings: [/chargeback-labels/] },
  });
  t.ok(JSON.parse(Buffer.from(out.response.patch, 'base64').toString()).length > 3);
  t.equal(r.code, 0);

  const base = ['apply', '--policy', SHARED, '--context', join(SUITES, 'cluster.yaml')];
  const asYaml = await capture(() => policyCommand([...base, '-o', 'yaml', join(dir, 'review.json')]));
  t.equal(asYaml.code, 0);
  const mutated = parseYaml(asYaml.out);
  t.equal(mutated.spec.schedulerName, 'tessera-scheduler', '-o yaml prints the object after mutation');
  t.equal(mutated.spec.containers[0].resources.limits['tessera.io/gpu-milli'], '500');
  t.equal(mutated.metadata.annotations['tessera.io/pool'], 'shared-h100');
  const asJson = await capture(() => policyCommand([...base, '--output', 'json', join(dir, 'review.json')]));
  t.same(JSON.parse(asJson.out), mutated, '-o json prints the same object');
  t.throws(() => policyCommand([...base, '-o', 'xml', join(dir, 'review.json')]), UsageError);

  // A denial exits 1, with the review on stdout and the reason on stderr; with -o nothing is printed on stdout.
  const denied = structuredClone(review);
  denied.request.namespace = 'scratch';
  denied.request.object.metadata.namespace = 'scratch';
  writeFileSync(join(dir, 'denied.json'), JSON.stringify(denied));
  const errors: string[] = [];
  const originalError = console.error;
  console.error = (...a: unknown[]) => errors.push(a.join(' '));
  try {
    const d = await capture(() => policyCommand([...base, join(dir, 'denied.json')]));
    t.equal(d.code, 1, 'a denial exits 1');
    t.match(JSON.parse(d.out), {
      response: { uid: 'u-42', allowed: false, status: { message: /no tessera.io\/tenant label/ } },
    });
    const o = await capture(() => policyCommand([...base, '-o', 'yaml', join(dir, 'denied.json')]));
    t.equal(o.code, 1);
    t.equal(o.out, '', 'no object for a denied request');
  } finally {
    console.error = originalError;
  }
  t.match(errors.join('\n'), /denied: [\s\S]*no tessera.io\/tenant label/);
});

t.test('audit reports drifted pods by rule and tenant from a snapshot', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-audit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const snapshot = {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'old', namespace: 'vision', annotations: { 'tessera.io/policy-revision': 'deadbeef' } },
        spec: {
          nodeName: 'n1',
          schedulerName: 'default-scheduler',
          containers: [{ name: 'c', image: 'registry.example/x:1', resources: { limits: { 'nvidia.com/gpu': '1' } } }],
        },
        status: { phase: 'Running' },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'done', namespace: 'vision' },
        spec: { containers: [{ name: 'c', image: 'x' }] },
        status: { phase: 'Succeeded' },
      },
    ],
  };
  writeFileSync(join(dir, 'snap.json'), JSON.stringify(snapshot));
  const r = await capture(() => auditCommand(['--policy', SHARED, '--snapshot', join(dir, 'snap.json')]));
  t.equal(r.code, 0);
  t.match(r.out, /1 running pod\(s\) checked, 1 drifted, 1 admitted under another revision/);
  t.match(r.out, /tessera\/accounting\s+enforce\s+research\s+1 pod/);
  t.match(r.out, /vision\/old \(tenant research, admitted under deadbeef\)/);
  const json = JSON.parse(
    (await capture(() => auditCommand(['--policy', SHARED, '--snapshot', join(dir, 'snap.json'), '--json']))).out,
  );
  t.equal(json.drifted[0].name, 'old');
});

t.test('the CLI and the webhook compute the same revision for the same file reached by different paths', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'tessera-revision-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'policy');
  mkdirSync(dir);
  writeFileSync(join(dir, 'policy.yaml'), EXAMPLE_POLICY_TEXT);
  symlinkSync(dir, join(root, 'linked'));
  mkdirSync(join(root, 'elsewhere'));
  writeFileSync(join(root, 'elsewhere', 'renamed.yml'), EXAMPLE_POLICY_TEXT);
  writeFileSync(join(root, 'snap.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [] }));
  const store = new PolicyStore(dir, pino({ level: 'silent' }));
  t.ok(store.reload());
  const webhook = store.status().revision!;
  t.match(webhook, /^[0-9a-f]{16}$/);
  const paths = [
    dir,
    `${dir}/`,
    join(dir, 'policy.yaml'),
    join(root, 'linked'),
    join(root, 'linked', 'policy.yaml'),
    `${root}/elsewhere/../policy/policy.yaml`,
    relative(process.cwd(), join(dir, 'policy.yaml')),
    join(root, 'elsewhere', 'renamed.yml'),
    join(root, 'elsewhere'),
  ];
  for (const path of paths) {
    const lint = await capture(() => policyCommand(['lint', path]));
    t.equal(/revision ([0-9a-f]{16})/.exec(lint.out)?.[1], webhook, `policy lint ${path}`);
    const audit = await capture(() =>
      auditCommand(['--policy', path, '--snapshot', join(root, 'snap.json'), '--json']),
    );
    t.equal(JSON.parse(audit.out).revision, webhook, `audit --policy ${path}`);
  }
  const other = new PolicyStore(join(root, 'linked'), pino({ level: 'silent' }));
  other.reload();
  t.equal(other.status().revision, webhook, 'the webhook through a symlinked directory');
});

t.test('policy test: a case that checks nothing, or checks with a misspelt key, is an error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-suite-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const object =
    '{apiVersion: v1, kind: Pod, metadata: {name: p, namespace: vision}, spec: {containers: [{name: c, image: x}]}}';
  const suite = (cases: string) => `policy: ${SHARED}\ncontext: ${join(SUITES, 'cluster.yaml')}\ncases:\n${cases}`;
  const run = async (cases: string) => {
    writeFileSync(join(dir, 'x.test.yaml'), suite(cases));
    return capture(() => policyCommand(['test', join(dir, 'x.test.yaml')]));
  };
  const misspelt = await run(`  - name: misspelt\n    object: ${object}\n    expected: {allowed: false}\n`);
  t.equal(misspelt.code, 1);
  t.match(misspelt.out, /INVALID misspelt\n.*unknown key "expected"; did you mean "expect"\?/);
  t.match(misspelt.out, /"expect" is missing, so the case would check nothing/);
  t.match(misspelt.out, /0 passed, 1 failed/);
  const none = await run(`  - name: nothing\n    object: ${object}\n`);
  t.equal(none.code, 1);
  t.match(none.out, /INVALID nothing\n.*"expect" is missing/);
  const empty = await run(`  - name: empty\n    object: ${object}\n    expect: {warnings: [], fields: {}}\n`);
  t.equal(empty.code, 1);
  t.match(empty.out, /INVALID empty\n.*expect: checks nothing/);
  const inner = await run(`  - name: inner\n    object: ${object}\n    expect: {alowed: true}\n`);
  t.equal(inner.code, 1);
  t.match(inner.out, /unknown key "alowed"; did you mean "allowed"\?/);
  const good = await run(`  - name: good\n    object: ${object}\n    expect: {allowed: true}\n`);
  t.equal(good.code, 0, good.out);
  t.match(good.out, /1 passed, 0 failed/);
  writeFileSync(
    join(dir, 'y.test.yaml'),
    `${suite(`  - name: good\n    object: ${object}\n    expect: {allowed: true}\n`)}sytemUsers: []\n`,
  );
  t.throws(
    () => policyCommand(['test', join(dir, 'y.test.yaml')]),
    /unknown key "sytemUsers"; did you mean "systemUsers"\?/,
  );
});

t.test('policy lint reports one YAML syntax error once, with line, column and a hint', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-yaml-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const text = EXAMPLE_POLICY_TEXT.replace('\n    - name: shared-h100', '\n    -name: shared-h100');
  t.not(text, EXAMPLE_POLICY_TEXT);
  const line = text.split('\n').findIndex((l) => l.includes('-name: shared-h100')) + 1;
  writeFileSync(join(dir, 'policy.yaml'), text);
  const r = await capture(() => policyCommand(['lint', join(dir, 'policy.yaml')]));
  t.equal(r.code, 1);
  const problems = r.out.split('\n').filter((l) => l.includes('policy.yaml'));
  t.equal(problems.length, 1, `one problem, not a cascade:\n${r.out}`);
  t.match(
    problems[0],
    new RegExp(
      `policy\\.yaml:${line}:\\d+: not valid YAML: .*\\(line ${line}: "-name: shared-h100"\\); hint: a list item needs a space after '-'; \\d+ more YAML error\\(s\\) after it probably follow from this one`,
    ),
  );
  t.match(r.out, /\n1 problem\(s\)/);
  writeFileSync(join(dir, 'policy.yaml'), EXAMPLE_POLICY_TEXT.replace('\n  pools:', '\n\tpools:'));
  const tab = await capture(() => policyCommand(['lint', join(dir, 'policy.yaml')]));
  t.match(
    tab.out,
    /policy\.yaml:\d+:1: not valid YAML: Tabs are not allowed as indentation .*hint: indent with spaces, not tabs/,
  );
});
