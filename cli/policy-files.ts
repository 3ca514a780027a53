// Policy files named on the command line (files or directories), read and compiled with the same code the servers use.

import { readFileSync, statSync } from 'node:fs';
import { compilePolicy, formatProblem, type PolicyFile } from '../core/policy/compile.ts';
import type { Policy } from '../core/policy/model.ts';
import { readPolicyDir } from '../server/policy-store.ts';

export function readPolicyFiles(paths: readonly string[]): PolicyFile[] {
  const files: PolicyFile[] = [];
  for (const path of paths) {
    const stat = statSync(path, { throwIfNoEntry: false });
    if (!stat) throw new Error(`${path}: no such file or directory`);
    if (stat.isDirectory())
      files.push(...readPolicyDir(path).map((f) => ({ name: `${path.replace(/\/$/, '')}/${f.name}`, text: f.text })));
    else files.push({ name: path, text: readFileSync(path, 'utf8') });
  }
  return files;
}

export function loadPolicy(paths: readonly string[]): Policy {
  const result = compilePolicy(readPolicyFiles(paths));
  if (!result.ok)
    throw new Error(`the policy does not compile:\n${result.problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`);
  return result.policy;
}
