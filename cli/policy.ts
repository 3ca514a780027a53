// `tessera policy lint | test | apply`: the security team's tools, on the same code path as the webhook.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { staticClusterView } from '../core/admission/cluster-view.ts';
import { staticDraLookup } from '../core/dra/lookup.ts';
import { runAdmission } from '../core/admission/pipeline.ts';
import type { AdmissionRequest, AdmissionReview, UserInfo } from '../core/admission/request.ts';
import { compilePolicy, formatProblem } from '../core/policy/compile.ts';
import type { Policy } from '../core/policy/model.ts';
import { readObjects, type ObjectSet } from './objects.ts';
import { loadPolicy, readPolicyFiles } from './policy-files.ts';
import { POLICY_USAGE, UsageError } from './help.ts';

function lint(args: string[]): number {
  if (args.length === 0) throw new UsageError('name the policy files to lint', POLICY_USAGE);
  const files = readPolicyFiles(args);
  const result = compilePolicy(files);
  if (!result.ok) {
    for (const p of result.problems) console.log(formatProblem(p));
    console.log(`\n${result.problems.length} problem(s); the webhook would keep serving its last good policy`);
    return 1;
  }
  const p = result.policy;
  console.log(`ok: ${files.length} file(s), revision ${p.revision}`);
  console.log(
    `  pools:   ${p.pools.map((x) => `${x.name} (${x.fractionMode}${x.gpuModel ? `, ${x.gpuModel}` : ''}${x.deviceClasses.length > 0 ? `, classes ${x.deviceClasses.join(' ')}` : ''}${x.deviceResources.length > 0 ? `, devices ${x.deviceResources.map((d) => `${d.resource}=1/${d.perGpu}`).join(' ')}` : ''})`).join(', ') || '(none)'}`,
  );
  console.log(
    `  tenants: ${p.tenants.map((x) => `${x.name} (quota ${x.quotaGpus ?? 'none'}, ${x.shareGpuWith})`).join(', ') || '(none)'}`,
  );
  console.log(`  rules:   ${p.rules.map((x) => `${x.name} [${x.kind}, ${x.action}]`).join(', ') || '(none)'}`);
  return 0;
}

interface TestCase {
  name: string;
  user?: UserInfo;
  operation?: 'CREATE' | 'UPDATE' | 'DELETE';
  namespace?: string;
  object: Record<string, unknown>;
  oldObject?: Record<string, unknown>;
  subResource?: string;
  expect: {
    allowed?: boolean;
    denial?: string;
    warnings?: string[];
    violations?: string[];
    fields?: Record<string, unknown>;
  };
}

interface TestSuite {
  policy: string | string[];
  context?: string;
  systemUsers?: string[];
  cases: TestCase[];
}

function pointer(obj: unknown, path: string): unknown {
  if (path === '' || path === '/') return obj;
  let cur: unknown = obj;
  for (const raw of path.replace(/^\//, '').split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

function requestOf(c: TestCase, index: number): AdmissionRequest {
  const kind = String(c.object.kind ?? 'Pod');
  const apiVersion = String(c.object.apiVersion ?? 'v1');
  const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
  const meta = (c.object.metadata ?? {}) as { name?: string; namespace?: string };
  return {
    uid: `test-${index}`,
    kind: { group, version, kind },
    operation: c.operation ?? 'CREATE',
    ...(c.subResource ? { subResource: c.subResource } : {}),
    namespace: c.namespace ?? meta.namespace ?? (kind === 'Namespace' ? '' : 'default'),
    name: meta.name ?? '',
    userInfo: c.user ?? { username: 'tester', groups: ['system:authenticated'] },
    object: c.object,
    ...(c.oldObject ? { oldObject: c.oldObject } : {}),
  };
}

function failuresOf(c: TestCase, result: ReturnType<typeof runAdmission>): string[] {
  const failures: string[] = [];
  const r = result.response;
  const e = c.expect ?? {};
  if (e.allowed !== undefined && r.allowed !== e.allowed)
    failures.push(
      `expected ${e.allowed ? 'allowed' : 'denied'}, got ${r.allowed ? 'allowed' : `denied: ${r.status?.message ?? ''}`}`,
    );
  if (e.denial !== undefined && !new RegExp(e.denial).test(r.status?.message ?? ''))
    failures.push(`denial message ${JSON.stringify(r.status?.message ?? '(none)')} does not match /${e.denial}/`);
  for (const w of e.warnings ?? [])
    if (!(r.warnings ?? []).some((x) => new RegExp(w).test(x)))
      failures.push(`no warning matches /${w}/ (warnings: ${JSON.stringify(r.warnings ?? [])})`);
  const fired = new Set(result.violations.map((v) => v.rule));
  for (const v of e.violations ?? [])
    if (!fired.has(v)) failures.push(`rule ${v} did not fire (fired: ${[...fired].join(', ') || 'none'})`);
  for (const [path, want] of Object.entries(e.fields ?? {})) {
    const got = pointer(result.object, path);
    if (JSON.stringify(got) !== JSON.stringify(want))
      failures.push(`${path} is ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
  }
  return failures;
}

const SUITE_KEYS = ['policy', 'context', 'systemUsers', 'cases'];
const CASE_KEYS = ['name', 'user', 'operation', 'namespace', 'object', 'oldObject', 'subResource', 'expect'];
const EXPECT_KEYS = ['allowed', 'denial', 'warnings', 'violations', 'fields'];

/** Levenshtein distance, for "did you mean" on misspelt keys. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

function unknownKeys(value: object, allowed: readonly string[], where: string): string[] {
  return Object.keys(value)
    .filter((k) => !allowed.includes(k))
    .map((k) => {
      const near = allowed.find((a) => distance(a, k) <= 2 || k.startsWith(a) || a.startsWith(k));
      return `${where}: unknown key "${k}"${near ? `; did you mean "${near}"?` : ''} (allowed: ${allowed.join(', ')})`;
    });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** What is wrong with a case as written: a case that checks nothing, or checks with a misspelt key, is an error. */
export function caseProblems(c: unknown): string[] {
  if (!isObject(c)) return ['a case must be a mapping with name, object and expect'];
  const problems = unknownKeys(c, CASE_KEYS, 'case');
  if (typeof c.name !== 'string' || c.name === '') problems.push('case: "name" is missing');
  if (!isObject(c.object)) problems.push('case: "object" (the Kubernetes object under review) is missing');
  if (c.operation !== undefined && !['CREATE', 'UPDATE', 'DELETE', 'CONNECT'].includes(String(c.operation)))
    problems.push(`case: operation ${JSON.stringify(c.operation)} is not CREATE, UPDATE, DELETE or CONNECT`);
  const e = c.expect;
  if (e === undefined || e === null) {
    problems.push(
      `case: "expect" is missing, so the case would check nothing; give at least one of ${EXPECT_KEYS.join(', ')}`,
    );
    return problems;
  }
  if (!isObject(e)) return [...problems, 'expect: must be a mapping'];
  problems.push(...unknownKeys(e, EXPECT_KEYS, 'expect'));
  if (e.allowed !== undefined && typeof e.allowed !== 'boolean') problems.push('expect.allowed: must be true or false');
  if (e.denial !== undefined && typeof e.denial !== 'string')
    problems.push('expect.denial: must be a regular expression');
  for (const k of ['warnings', 'violations'] as const)
    if (e[k] !== undefined && !isStrings(e[k])) problems.push(`expect.${k}: must be a list of strings`);
  if (e.fields !== undefined && !isObject(e.fields)) problems.push('expect.fields: must map JSON pointers to values');
  for (const k of ['denial', 'warnings'] as const)
    for (const re of typeof e[k] === 'string' ? [e[k]] : isStrings(e[k]) ? e[k] : []) {
      try {
        new RegExp(re);
      } catch (err) {
        problems.push(`expect.${k}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  const checks =
    (typeof e.allowed === 'boolean' ? 1 : 0) +
    (typeof e.denial === 'string' ? 1 : 0) +
    (isStrings(e.warnings) ? e.warnings.length : 0) +
    (isStrings(e.violations) ? e.violations.length : 0) +
    (isObject(e.fields) ? Object.keys(e.fields).length : 0);
  if (checks === 0 && problems.length === 0)
    problems.push(`expect: checks nothing; give at least one of ${EXPECT_KEYS.join(', ')}`);
  return problems;
}

function runSuite(file: string): { passed: number; failed: number } {
  const suite = parseYaml(readFileSync(file, 'utf8')) as TestSuite;
  if (!isObject(suite) || !Array.isArray(suite.cases))
    throw new Error(`${file}: a test suite needs "policy" and "cases"`);
  const suiteProblems = unknownKeys(suite, SUITE_KEYS, `${file}`);
  if (suiteProblems.length > 0) throw new Error(suiteProblems.join('\n'));
  const base = dirname(file);
  const policy = loadPolicy((Array.isArray(suite.policy) ? suite.policy : [suite.policy]).map((p) => resolve(base, p)));
  const context: ObjectSet = suite.context
    ? readObjects(resolve(base, suite.context))
    : { namespaces: [], pods: [], nodes: [], other: [] };
  const view = staticClusterView(context.namespaces, context.pods, staticDraLookup(context.other));
  let passed = 0;
  let failed = 0;
  console.log(`${file} (policy revision ${policy.revision})`);
  suite.cases.forEach((c, i) => {
    const label = isObject(c) && typeof c.name === 'string' && c.name !== '' ? c.name : `case ${i + 1}`;
    const invalid = caseProblems(c);
    if (invalid.length > 0) {
      failed++;
      console.log(`  INVALID ${label}`);
      for (const f of invalid) console.log(`          ${f}`);
      return;
    }
    const result = runAdmission(requestOf(c, i), policy, view, { systemUsers: suite.systemUsers ?? [] });
    const failures = failuresOf(c, result);
    if (failures.length === 0) {
      passed++;
      console.log(`  ok      ${c.name}`);
    } else {
      failed++;
      console.log(`  FAILED  ${c.name}`);
      for (const f of failures) console.log(`          ${f}`);
    }
  });
  return { passed, failed };
}

function test(args: string[]): number {
  if (args.length === 0) throw new UsageError('name test suites (files or directories)', POLICY_USAGE);
  const files: string[] = [];
  for (const a of args) {
    files.push(...suiteFiles(a));
  }
  let passed = 0;
  let failed = 0;
  for (const f of files) {
    const r = runSuite(f);
    passed += r.passed;
    failed += r.failed;
  }
  console.log(`\n${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

/** Test suites: the given files, or the *.test.yaml files of a directory. */
function suiteFiles(path: string): string[] {
  if (statSync(path).isDirectory())
    return readdirSync(path)
      .filter((f) => /\.test\.ya?ml$/.test(f))
      .sort()
      .map((f) => resolve(path, f));
  return [path];
}

function apply(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      policy: { type: 'string', multiple: true },
      context: { type: 'string' },
      'system-user': { type: 'string', multiple: true },
      output: { type: 'string', short: 'o' },
    },
  });
  if (!values.policy || positionals.length !== 1)
    throw new UsageError('--policy and one REVIEW.json are required', POLICY_USAGE);
  const output = values.output;
  if (output !== undefined && output !== 'json' && output !== 'yaml')
    throw new UsageError(`-o ${output}: write -o json or -o yaml (the object after mutation)`, POLICY_USAGE);
  const policy: Policy = loadPolicy(values.policy);
  const context = values.context ? readObjects(values.context) : { namespaces: [], pods: [], nodes: [], other: [] };
  const review = JSON.parse(readFileSync(positionals[0]!, 'utf8')) as AdmissionReview;
  if (review.apiVersion !== 'admission.k8s.io/v1' || review.kind !== 'AdmissionReview' || !review.request?.uid) {
    throw new Error(`${positionals[0]} is not an admission.k8s.io/v1 AdmissionReview with request.uid`);
  }
  const result = runAdmission(
    { ...review.request, userInfo: review.request.userInfo ?? {} },
    policy,
    staticClusterView(context.namespaces, context.pods, staticDraLookup(context.other)),
    { systemUsers: values['system-user'] ?? [] },
  );
  const allowed = result.response.allowed;
  if (output === undefined) {
    console.log(
      JSON.stringify(
        { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: result.response },
        null,
        2,
      ),
    );
  } else if (allowed) {
    // The object as it would be stored: the request's object with the mutating patch applied.
    console.log(output === 'json' ? JSON.stringify(result.object, null, 2) : stringifyYaml(result.object).trimEnd());
  }
  for (const w of result.response.warnings ?? []) if (output !== undefined) console.error(`warning: ${w}`);
  if (!allowed) console.error(`denied: ${result.response.status?.message ?? '(no message)'}`);
  return allowed ? 0 : 1;
}

export function policyCommand(argv: string[]): number {
  const [sub, ...rest] = argv;
  if (sub === 'lint') return lint(rest);
  if (sub === 'test') return test(rest);
  if (sub === 'apply') return apply(rest);
  throw new UsageError(`unknown policy command "${sub ?? ''}"`, POLICY_USAGE);
}
