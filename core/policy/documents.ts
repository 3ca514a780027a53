// Parsing: each file's YAML documents (or one JSON document), each validated against the JSON Schema with ajv. A
// document that fails the schema contributes its problems and nothing else.

import { Ajv, type ErrorObject } from 'ajv';
import { parseAllDocuments } from 'yaml';
import type { Action, Pool } from './model.ts';
import type { PolicyFile, PolicyProblem } from './policy-source.ts';
import { POLICY_SCHEMA } from './schema.ts';

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(POLICY_SCHEMA);

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

export interface RawRule {
  name: string;
  kind: string;
  action: Action;
  match?: { tenants?: string[]; namespaces?: string[] };
  params?: Record<string, unknown>;
}

export interface RawSpec {
  schedulerName?: string;
  admins?: { groups?: string[]; users?: string[] };
  pools?: {
    name: string;
    nodeSelector: Record<string, string>;
    taint?: { key: string; value?: string; effect: string };
    fractionMode: Pool['fractionMode'];
    gpuModel?: string;
    resource?: string;
    replicas?: number;
    deviceClasses?: string[];
  }[];
  tenants?: {
    name: string;
    pools: string[];
    quota?: { gpus?: number };
    maxGpusPerPod?: number;
    priorityClasses?: string[];
    shareGpuWith?: 'any' | 'same-tenant';
    mayPreempt?: string[];
  }[];
  rules?: RawRule[];
}

/** A schema-valid document, named for messages (`file[1]` for the second document of a file). */
export interface SpecDocument {
  readonly file: string;
  readonly name: string;
  readonly spec: RawSpec;
}

function parseDocuments(file: PolicyFile, problems: PolicyProblem[]): unknown[] {
  const trimmed = file.text.trim();
  if (trimmed.startsWith('{')) {
    try {
      return [JSON.parse(trimmed)];
    } catch (e) {
      problems.push({
        file: file.name,
        path: '',
        message: `not valid JSON: ${e instanceof Error ? e.message : String(e)}`,
      });
      return [];
    }
  }
  const docs = parseAllDocuments(file.text);
  const values: unknown[] = [];
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    if (doc.errors.length > 0) {
      for (const err of doc.errors)
        problems.push({ file: file.name, path: '', message: `not valid YAML: ${err.message.split('\n')[0]}` });
      continue;
    }
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) values.push(value);
  }
  if (values.length === 0 && problems.length === 0)
    problems.push({ file: file.name, path: '', message: 'the file holds no policy document' });
  return values;
}

/** Every schema-valid document of the files, in file-name order. */
export function readSpecDocuments(files: readonly PolicyFile[], problems: PolicyProblem[]): SpecDocument[] {
  const out: SpecDocument[] = [];
  for (const file of [...files].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const docs = parseDocuments(file, problems);
    docs.forEach((doc, d) => {
      const fileName = docs.length > 1 ? `${file.name}[${d}]` : file.name;
      if (!validate(doc)) {
        problems.push(...schemaProblems(fileName, validate.errors ?? []));
        return;
      }
      const typed = doc as { metadata: { name: string }; spec: RawSpec };
      out.push({ file: fileName, name: typed.metadata.name, spec: typed.spec });
    });
  }
  return out;
}
