// The policy revision stamped on every admitted pod: a hash of the files' contents alone, so that the webhook, the
// extender and the CLI agree on it whatever path or file name each was given.

import { createHash } from 'node:crypto';
import type { PolicyFile } from './policy-source.ts';

export function policyRevision(files: readonly PolicyFile[]): string {
  const hash = createHash('sha256');
  for (const text of files.map((f) => f.text).sort()) hash.update(text).update('\0');
  return hash.digest('hex').slice(0, 16);
}
