// Parsing: each file's YAML documents (or one JSON document), each validated against the JSON Schema with ajv. A
// document that fails the schema contributes its problems and nothing else.

import { Ajv, type ErrorObject } from 'ajv';
import { parseAllDocuments, type YAMLError } from 'yaml';
import type { Action, Pool, PoolDelivery } from './model.ts';
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
  acceleratorResources?: { include?: string[]; exclude?: string[] };
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
    deviceResources?: { resource: string; perGpu: number }[];
    delivery?: { mode?: PoolDelivery['mode']; enforcement?: NonNullable<PoolDelivery['enforcement']> };
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
  const errors: YAMLError[] = [];
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    if (doc.errors.length > 0) {
      errors.push(...doc.errors);
      continue;
    }
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) values.push(value);
  }
  // One syntax error makes the parser lose its place, and what follows is mostly its echo: report the first, where it
  // is, with a hint, and only count the rest.
  if (errors.length > 0) problems.push(yamlProblem(file, errors[0]!, errors.length - 1));
  if (values.length === 0 && problems.length === 0)
    problems.push({ file: file.name, path: '', message: 'the file holds no policy document' });
  return values;
}

const YAML_HINTS: Partial<Record<YAMLError['code'], string>> = {
  TAB_AS_INDENT: 'indent with spaces, not tabs',
  BAD_INDENT:
    'check the indentation: the keys of one mapping and the items of one list start at the same column; a [ or { must be closed on the same level',
  BLOCK_AS_IMPLICIT_KEY:
    "a key and its value are separated by ': ' (colon, space) and a list item starts with '- ' (dash, space)",
  MULTILINE_IMPLICIT_KEY: "a key must fit on one line and be followed by ': '",
  MISSING_CHAR:
    "something is not closed or not separated: check quotes, brackets, braces, ': ' and '- ' here and just before",
  DUPLICATE_KEY: 'each key may appear once in a mapping',
  BAD_SCALAR_START: 'quote a value that starts with a special character (@, `, %, *, &, !, |, >)',
  UNEXPECTED_TOKEN: 'quote the value, or check the punctuation just before',
};

function yamlProblem(file: PolicyFile, err: YAMLError, more: number): PolicyProblem {
  const at = err.linePos?.[0];
  const line = at === undefined ? '' : (file.text.split(/\r?\n/)[at.line - 1] ?? '');
  const what = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  let hint = YAML_HINTS[err.code] ?? 'check the YAML syntax here';
  if (/^\s*-[^\s-]/.test(line)) hint = "a list item needs a space after '-'";
  else if (line.includes('\t')) hint = YAML_HINTS.TAB_AS_INDENT!;
  const excerpt = at === undefined ? '' : ` (line ${at.line}: ${JSON.stringify(line.trim())})`;
  const rest = more > 0 ? `; ${more} more YAML error(s) after it probably follow from this one` : '';
  return {
    file: at === undefined ? file.name : `${file.name}:${at.line}:${at.col}`,
    path: '',
    message: `not valid YAML: ${what}${excerpt}; hint: ${hint}${rest}`,
  };
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
