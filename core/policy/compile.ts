// Turns policy files (YAML or JSON text) into one Policy: parse and validate each document against the JSON Schema,
// merge their sections, then the semantic checks a schema cannot express (unknown or overlapping pools, impossible
// MIG pools, bad regular expressions, duplicate names). Every problem names the file, the path inside it and how to
// fix it; all problems are reported, not just the first.

import { acceleratorNames } from '../accelerators/resource-names.ts';
import { DEFAULT_SCHEDULER_NAME } from '../well-known-names.ts';
import { crossFileProblems } from './cross-checks.ts';
import { readSpecDocuments } from './documents.ts';
import type { Policy } from './model.ts';
import type { PolicyFile, PolicyProblem } from './policy-source.ts';
import { policyRevision } from './revision.ts';
import { mergeSections } from './sections.ts';

export { formatProblem, type PolicyFile, type PolicyProblem } from './policy-source.ts';

export type CompileResult =
  | { readonly ok: true; readonly policy: Policy }
  | { readonly ok: false; readonly problems: readonly PolicyProblem[] };

/** Compiles one or more policy files into one Policy, or every problem found. Pure: the caller reads the files. */
export function compilePolicy(files: readonly PolicyFile[]): CompileResult {
  if (files.length === 0)
    return {
      ok: false,
      problems: [{ file: '(none)', path: '', message: 'no policy files found; mount at least one TesseraPolicy file' }],
    };
  const problems: PolicyProblem[] = [];
  const sections = mergeSections(readSpecDocuments(files, problems), problems);
  problems.push(...crossFileProblems(sections));
  if (problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    policy: {
      name: sections.names.join('+'),
      revision: policyRevision(files),
      schedulerName: sections.schedulerName ?? DEFAULT_SCHEDULER_NAME,
      admins: sections.admins,
      pools: sections.pools,
      tenants: sections.tenants,
      rules: sections.rules,
      sources: files.map((f) => f.name),
      accelerators: acceleratorNames({
        ...sections.acceleratorResources,
        mapped: sections.pools.flatMap((p) => p.deviceResources.map((d) => d.resource)),
      }),
    },
  };
}
