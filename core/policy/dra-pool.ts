// The semantic checks of a pool's DRA fields that the schema cannot express: deviceClasses belong to dra pools only,
// and a dra pool has no device-plugin replicas (kube-scheduler's DRA plugin allocates its devices).

import type { RawSpec } from './documents.ts';
import type { PolicyProblem } from './policy-source.ts';

type PoolSpec = NonNullable<RawSpec['pools']>[number];

export function draPoolProblems(p: PoolSpec, file: string, path: string): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  if (p.fractionMode !== 'dra') {
    if (p.deviceClasses !== undefined)
      problems.push({
        file,
        path: `${path}/deviceClasses`,
        message: `deviceClasses applies to fractionMode dra only; remove it or set fractionMode: dra (this pool is ${p.fractionMode})`,
      });
    return problems;
  }
  for (const field of ['resource', 'replicas'] as const) {
    if (p[field] !== undefined)
      problems.push({
        file,
        path: `${path}/${field}`,
        message: `${field} applies to time-slicing and mps pools; a dra pool's devices are allocated by kube-scheduler's DRA plugin from its deviceClasses. Remove it`,
      });
  }
  return problems;
}
