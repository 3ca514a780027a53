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
  problems.push(...deviceResourceProblems(s));
  return problems;
}

/**
 * A device name is a physical fact of the nodes (one PCI product, one vGPU type), so every pool that lists it must
 * weigh it alike; and a name a pool maps cannot also be declared a non-accelerator.
 */
function deviceResourceProblems(s: Sections): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  const first = new Map<string, { pool: string; perGpu: number }>();
  for (const pool of s.pools) {
    for (const d of pool.deviceResources) {
      const seen = first.get(d.resource);
      if (seen === undefined) first.set(d.resource, { pool: pool.name, perGpu: d.perGpu });
      else if (seen.perGpu !== d.perGpu)
        problems.push({
          file: s.origin.get(`pool/${pool.name}`) ?? '?',
          path: `/spec/pools[name=${pool.name}]/deviceResources`,
          message: `${d.resource} has perGpu ${d.perGpu} here but ${seen.perGpu} in pool ${seen.pool}; one device weighs the same in every pool`,
        });
    }
  }
  for (const name of s.acceleratorResources.exclude) {
    const mapped = first.get(name);
    if (mapped !== undefined)
      problems.push({
        file: s.origin.get(`pool/${mapped.pool}`) ?? '?',
        path: '/spec/acceleratorResources/exclude',
        message: `${name} is listed in exclude but pool ${mapped.pool} maps it as a device; remove it from exclude`,
      });
  }
  return problems;
}
