// Turns policy files (YAML or JSON text) into one Policy: JSON Schema validation with ajv, then semantic checks that a
// schema cannot express (unknown or overlapping pools, impossible MIG pools, bad regular expressions, duplicate names).
// Every problem names the file, the path inside it and how to fix it; all problems are reported, not just the first.

import { createHash } from 'node:crypto';
import { Ajv, type ErrorObject } from 'ajv';
import { parseAllDocuments } from 'yaml';
import { lookupModel, canonicalModelName } from '../catalog/gpu-models.ts';
import { DEFAULT_SCHEDULER_NAME, NVIDIA_GPU } from '../well-known-names.ts';
import { memoryMiB } from '../quantity.ts';
import type { Action, Pool, Policy, Rule, RuleMatch, Tenant } from './model.ts';
import { POLICY_SCHEMA } from './schema.ts';

export interface PolicyFile {
  /** A name for messages, e.g. the file path. */
  readonly name: string;
  readonly text: string;
}

export interface PolicyProblem {
  readonly file: string;
  /** JSON pointer into the file's document, e.g. /spec/pools/1/fractionMode. */
  readonly path: string;
  readonly message: string;
}

export type CompileResult = { readonly ok: true; readonly policy: Policy } | { readonly ok: false; readonly problems: readonly PolicyProblem[] };

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(POLICY_SCHEMA);

export function formatProblem(p: PolicyProblem): string {
  return `${p.file}: ${p.path || '/'}: ${p.message}`;
}

function schemaMessage(e: ErrorObject): string {
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return `unknown field "${String(params.additionalProperty)}"; remove it or check its spelling`;
    case 'required':
      return `missing required field "${String(params.missingProperty)}"`;
    case 'enum':
      return `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `must be ${JSON.stringify(params.allowedValue)}`;
    case 'type':
      return `must be ${String(params.type)}`;
    case 'pattern':
      return `${e.message ?? 'has the wrong format'}; e.g. lower-case names like "shared-h100", quantities like "80Gi"`;
    default:
      return e.message ?? 'is invalid';
  }
}

function schemaProblems(file: string, errors: readonly ErrorObject[]): PolicyProblem[] {
  // if/then failures duplicate the real error underneath them.
  const seen = new Set<string>();
  const out: PolicyProblem[] = [];
  for (const e of errors) {
    if (e.keyword === 'if') continue;
    const p = { file, path: e.instancePath, message: schemaMessage(e) };
    const key = `${p.path}|${p.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(p);
  }
  return out;
}

interface RawRule {
  name: string;
  kind: string;
  action: Action;
  match?: { tenants?: string[]; namespaces?: string[] };
  params?: Record<string, unknown>;
}

interface RawSpec {
  schedulerName?: string;
  admins?: { groups?: string[]; users?: string[] };
  pools?: { name: string; nodeSelector: Record<string, string>; taint?: { key: string; value?: string; effect: string }; fractionMode: Pool['fractionMode']; gpuModel?: string; resource?: string; replicas?: number }[];
  tenants?: { name: string; pools: string[]; quota?: { gpus?: number }; maxGpusPerPod?: number; priorityClasses?: string[]; shareGpuWith?: 'any' | 'same-tenant' }[];
  rules?: RawRule[];
}

function parseDocuments(file: PolicyFile, problems: PolicyProblem[]): unknown[] {
  const trimmed = file.text.trim();
  if (trimmed.startsWith('{')) {
    try {
      return [JSON.parse(trimmed)];
    } catch (e) {
      problems.push({ file: file.name, path: '', message: `not valid JSON: ${e instanceof Error ? e.message : String(e)}` });
      return [];
    }
  }
  const docs = parseAllDocuments(file.text);
  const values: unknown[] = [];
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    if (doc.errors.length > 0) {
      for (const err of doc.errors) problems.push({ file: file.name, path: '', message: `not valid YAML: ${err.message.split('\n')[0]}` });
      continue;
    }
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) values.push(value);
  }
  if (values.length === 0 && problems.length === 0) problems.push({ file: file.name, path: '', message: 'the file holds no policy document' });
  return values;
}

/** Two selectors overlap when no label key they share asks for different values: some node could match both. */
function selectorsOverlap(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(a)) if (k in b && b[k] !== v) return false;
  return true;
}

function ruleMatch(raw: RawRule['match']): RuleMatch {
  return { tenants: raw?.tenants ?? null, namespaces: raw?.namespaces ?? null };
}

function compileRule(raw: RawRule, file: string, path: string, problems: PolicyProblem[]): Rule | null {
  const base = { name: raw.name, action: raw.action, match: ruleMatch(raw.match), source: file };
  const params = raw.params ?? {};
  switch (raw.kind) {
    case 'GpuRequest': {
      let maxMemoryMiB: number | null = null;
      if (typeof params.maxMemory === 'string') {
        try {
          maxMemoryMiB = memoryMiB(params.maxMemory);
        } catch {
          problems.push({ file, path: `${path}/params/maxMemory`, message: `"${params.maxMemory}" is not a quantity; write e.g. "80Gi"` });
        }
      }
      const minFraction = typeof params.minFraction === 'number' ? params.minFraction : null;
      return { ...base, kind: 'GpuRequest', minMilli: minFraction === null ? null : Math.ceil(minFraction * 1000 - 1e-9), maxMemoryMiB, requireLimits: params.requireLimits === true };
    }
    case 'GpuBypass':
      return { ...base, kind: 'GpuBypass' };
    case 'ImageRegistry':
      return { ...base, kind: 'ImageRegistry', allowed: params.allowed as string[] };
    case 'RequiredLabels': {
      const labels: { key: string; pattern: RegExp; source: string }[] = [];
      for (const [key, source] of Object.entries(params.labels as Record<string, string>)) {
        try {
          labels.push({ key, pattern: new RegExp(source, 'u'), source });
        } catch (e) {
          problems.push({ file, path: `${path}/params/labels/${key}`, message: `"${source}" is not a valid regular expression (${e instanceof Error ? e.message : String(e)})` });
        }
      }
      return { ...base, kind: 'RequiredLabels', labels };
    }
    case 'ImmutableFields':
      return { ...base, kind: 'ImmutableFields', annotations: (params.annotations as string[] | undefined) ?? [], labels: (params.labels as string[] | undefined) ?? [] };
    case 'RuntimeClass':
      return { ...base, kind: 'RuntimeClass', gpuPods: params.gpuPods as string };
    default:
      return null;
  }
}

/** Compiles one or more policy files into one Policy, or every problem found. Pure: the caller reads the files. */
export function compilePolicy(files: readonly PolicyFile[]): CompileResult {
  const problems: PolicyProblem[] = [];
  const pools: Pool[] = [];
  const tenants: Tenant[] = [];
  const rules: Rule[] = [];
  const names: string[] = [];
  const admins = { groups: [] as string[], users: [] as string[] };
  let schedulerName: string | null = null;
  const origin = new Map<string, string>();
  if (files.length === 0) return { ok: false, problems: [{ file: '(none)', path: '', message: 'no policy files found; mount at least one TesseraPolicy file' }] };

  for (const file of [...files].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const docs = parseDocuments(file, problems);
    docs.forEach((doc, d) => {
      const fileName = docs.length > 1 ? `${file.name}[${d}]` : file.name;
      if (!validate(doc)) {
        problems.push(...schemaProblems(fileName, validate.errors ?? []));
        return;
      }
      const typed = doc as { metadata: { name: string }; spec: RawSpec };
      names.push(typed.metadata.name);
      const spec = typed.spec;
      if (spec.schedulerName !== undefined) {
        if (schedulerName !== null && schedulerName !== spec.schedulerName) problems.push({ file: fileName, path: '/spec/schedulerName', message: `"${spec.schedulerName}" contradicts "${schedulerName}" set by another file; set it in one file only` });
        schedulerName = spec.schedulerName;
      }
      admins.groups.push(...(spec.admins?.groups ?? []));
      admins.users.push(...(spec.admins?.users ?? []));
      const unique = (kind: string, name: string, path: string): boolean => {
        const key = `${kind}/${name}`;
        const first = origin.get(key);
        if (first !== undefined) {
          problems.push({ file: fileName, path, message: `${kind} "${name}" is already defined in ${first}; names must be unique across all policy files` });
          return false;
        }
        origin.set(key, fileName);
        return true;
      };
      (spec.pools ?? []).forEach((p, i) => {
        const path = `/spec/pools/${i}`;
        if (!unique('pool', p.name, `${path}/name`)) return;
        let gpuModel: string | null = p.gpuModel === undefined ? null : canonicalModelName(p.gpuModel);
        if (p.fractionMode === 'mig') {
          const model = lookupModel(p.gpuModel ?? '');
          if (!model) problems.push({ file: fileName, path: `${path}/gpuModel`, message: `"${p.gpuModel}" is not a GPU model Tessera knows; use a GFD nvidia.com/gpu.product value such as A100-SXM4-80GB` });
          else if (!model.mig) problems.push({ file: fileName, path: `${path}/gpuModel`, message: `${p.gpuModel} GPUs do not support MIG; use fractionMode fraction or time-slicing for this pool` });
          else gpuModel = model.name;
        }
        if ((p.fractionMode === 'time-slicing' || p.fractionMode === 'mps') && p.replicas === undefined) {
          problems.push({ file: fileName, path: `${path}/replicas`, message: `a ${p.fractionMode} pool needs replicas (the device plugin's replicas per GPU)` });
        }
        if (p.taint && p.taint.key === '') problems.push({ file: fileName, path: `${path}/taint/key`, message: 'taint key must not be empty' });
        pools.push({ name: p.name, nodeSelector: p.nodeSelector, taint: p.taint ? { key: p.taint.key, value: p.taint.value ?? '', effect: p.taint.effect } : null, fractionMode: p.fractionMode, gpuModel, resource: p.resource ?? NVIDIA_GPU, replicas: p.replicas ?? null });
      });
      (spec.tenants ?? []).forEach((t, i) => {
        if (!unique('tenant', t.name, `/spec/tenants/${i}/name`)) return;
        tenants.push({ name: t.name, pools: t.pools, quotaGpus: t.quota?.gpus ?? null, maxGpusPerPod: t.maxGpusPerPod ?? null, priorityClasses: t.priorityClasses ?? null, shareGpuWith: t.shareGpuWith ?? 'any' });
        origin.set(`tenant-file/${t.name}`, fileName);
      });
      (spec.rules ?? []).forEach((r, i) => {
        const path = `/spec/rules/${i}`;
        if (!unique('rule', r.name, `${path}/name`)) return;
        const rule = compileRule(r, fileName, path, problems);
        if (rule) rules.push(rule);
        origin.set(`rule-file/${r.name}`, fileName);
      });
    });
  }

  // Cross-file references, checked once everything is known.
  const poolNames = new Set(pools.map((p) => p.name));
  const tenantNames = new Set(tenants.map((t) => t.name));
  tenants.forEach((t) => {
    for (const p of t.pools) {
      if (!poolNames.has(p)) problems.push({ file: origin.get(`tenant-file/${t.name}`) ?? '?', path: `/spec/tenants[name=${t.name}]/pools`, message: `pool "${p}" is not defined; defined pools: ${[...poolNames].join(', ') || '(none)'}` });
    }
  });
  rules.forEach((r) => {
    for (const t of r.match.tenants ?? []) {
      if (!tenantNames.has(t)) problems.push({ file: r.source, path: `/spec/rules[name=${r.name}]/match/tenants`, message: `tenant "${t}" is not defined; the rule would never apply to it` });
    }
  });
  for (let i = 0; i < pools.length; i++) {
    for (let j = i + 1; j < pools.length; j++) {
      const a = pools[i]!;
      const b = pools[j]!;
      if (selectorsOverlap(a.nodeSelector, b.nodeSelector)) {
        problems.push({ file: origin.get(`pool/${b.name}`) ?? '?', path: `/spec/pools[name=${b.name}]/nodeSelector`, message: `pools "${a.name}" and "${b.name}" can select the same node; give them a label key with different values (e.g. tessera.io/pool)` });
      }
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  const hash = createHash('sha256');
  for (const f of [...files].sort((a, b) => (a.name < b.name ? -1 : 1))) hash.update(f.name).update('\0').update(f.text).update('\0');
  return {
    ok: true,
    policy: {
      name: names.join('+'),
      revision: hash.digest('hex').slice(0, 16),
      schedulerName: schedulerName ?? DEFAULT_SCHEDULER_NAME,
      admins,
      pools,
      tenants,
      rules,
      sources: files.map((f) => f.name),
    },
  };
}
