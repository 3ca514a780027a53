// One rule of a policy file into its compiled form: quantities parsed, regular expressions built, defaults filled.

import { memoryMiB } from '../quantity.ts';
import type { RawRule } from './documents.ts';
import type { Rule, RuleMatch } from './model.ts';
import type { PolicyProblem } from './policy-source.ts';

function ruleMatch(raw: RawRule['match']): RuleMatch {
  return { tenants: raw?.tenants ?? null, namespaces: raw?.namespaces ?? null };
}

export function compileRule(raw: RawRule, file: string, path: string, problems: PolicyProblem[]): Rule | null {
  const base = { name: raw.name, action: raw.action, match: ruleMatch(raw.match), source: file };
  const params = raw.params ?? {};
  switch (raw.kind) {
    case 'GpuRequest': {
      let maxMemoryMiB: number | null = null;
      if (typeof params.maxMemory === 'string') {
        try {
          maxMemoryMiB = memoryMiB(params.maxMemory);
        } catch {
          problems.push({
            file,
            path: `${path}/params/maxMemory`,
            message: `"${params.maxMemory}" is not a quantity; write e.g. "80Gi"`,
          });
        }
      }
      const minFraction = typeof params.minFraction === 'number' ? params.minFraction : null;
      return {
        ...base,
        kind: 'GpuRequest',
        minMilli: minFraction === null ? null : Math.ceil(minFraction * 1000 - 1e-9),
        maxMemoryMiB,
        requireLimits: params.requireLimits === true,
      };
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
          problems.push({
            file,
            path: `${path}/params/labels/${key}`,
            message: `"${source}" is not a valid regular expression (${e instanceof Error ? e.message : String(e)})`,
          });
        }
      }
      return { ...base, kind: 'RequiredLabels', labels };
    }
    case 'ImmutableFields':
      return {
        ...base,
        kind: 'ImmutableFields',
        annotations: (params.annotations as string[] | undefined) ?? [],
        labels: (params.labels as string[] | undefined) ?? [],
      };
    case 'RuntimeClass':
      return { ...base, kind: 'RuntimeClass', gpuPods: params.gpuPods as string };
    default:
      return null;
  }
}
