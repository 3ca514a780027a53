// Checks across files, once every section is known: tenants name defined pools, rules name defined tenants, and no
// two pools can select the same node.

import type { PolicyProblem } from './policy-source.ts';
import type { Sections } from './sections.ts';

/** Two selectors overlap when no label key they share asks for different values: some node could match both. */
function selectorsOverlap(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(a)) if (k in b && b[k] !== v) return false;
  return true;
}

export function crossFileProblems(s: Sections): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const poolNames = new Set(s.pools.map((p) => p.name));
  const tenantNames = new Set(s.tenants.map((t) => t.name));
  for (const t of s.tenants) {
    for (const p of t.pools) {
      if (!poolNames.has(p))
        problems.push({
          file: s.origin.get(`tenant/${t.name}`) ?? '?',
          path: `/spec/tenants[name=${t.name}]/pools`,
          message: `pool "${p}" is not defined; defined pools: ${[...poolNames].join(', ') || '(none)'}`,
        });
    }
  }
  for (const t of s.tenants) {
    for (const other of t.mayPreempt) {
      if (other !== '*' && !tenantNames.has(other))
        problems.push({
          file: s.origin.get(`tenant/${t.name}`) ?? '?',
          path: `/spec/tenants[name=${t.name}]/mayPreempt`,
          message: `tenant "${other}" is not defined; name defined tenants, or "*" for any`,
        });
    }
  }
  for (const r of s.rules) {
    for (const t of r.match.tenants ?? []) {
      if (!tenantNames.has(t))
        problems.push({
          file: r.source,
          path: `/spec/rules[name=${r.name}]/match/tenants`,
          message: `tenant "${t}" is not defined; the rule would never apply to it`,
        });
    }
  }
  for (let i = 0; i < s.pools.length; i++) {
    for (let j = i + 1; j < s.pools.length; j++) {
      const a = s.pools[i]!;
      const b = s.pools[j]!;
      if (selectorsOverlap(a.nodeSelector, b.nodeSelector)) {
        problems.push({
          file: s.origin.get(`pool/${b.name}`) ?? '?',
          path: `/spec/pools[name=${b.name}]/nodeSelector`,
          message: `pools "${a.name}" and "${b.name}" can select the same node; give them a label key with different values (e.g. tessera.io/pool)`,
        });
      }
    }
  }
  return problems;
}
