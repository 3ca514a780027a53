// The sections of every document merged into one set of pools, tenants, rules and admins. Names are unique across all
// files; each pool, tenant and rule remembers the file it came from, for later messages.

import { canonicalModelName, lookupModel } from '../catalog/gpu-models.ts';
import { NVIDIA_GPU } from '../well-known-names.ts';
import type { RawSpec, SpecDocument } from './documents.ts';
import type { Pool, Rule, Tenant } from './model.ts';
import type { PolicyProblem } from './policy-source.ts';
import { draPoolProblems } from './dra-pool.ts';
import { devicePoolProblems, isDevicePoolMode } from './device-pool.ts';
import { compileRule } from './rule-compiler.ts';

export interface Sections {
  readonly names: string[];
  schedulerName: string | null;
  readonly admins: { groups: string[]; users: string[] };
  readonly pools: Pool[];
  readonly tenants: Tenant[];
  readonly rules: Rule[];
  /** spec.acceleratorResources of every file, merged. */
  readonly acceleratorResources: { include: string[]; exclude: string[] };
  /** `pool/<name>`, `tenant/<name>`, `rule/<name>` -> the file that defined it. */
  readonly origin: Map<string, string>;
}

type PoolSpec = NonNullable<RawSpec['pools']>[number];

function compilePool(p: PoolSpec, file: string, path: string, problems: PolicyProblem[]): Pool {
  let gpuModel: string | null = p.gpuModel === undefined ? null : canonicalModelName(p.gpuModel);
  if (p.fractionMode === 'mig') {
    const model = lookupModel(p.gpuModel ?? '');
    if (!model)
      problems.push({
        file,
        path: `${path}/gpuModel`,
        message: `"${p.gpuModel}" is not a GPU model Tessera knows; use a GFD nvidia.com/gpu.product value such as A100-SXM4-80GB`,
      });
    else if (!model.mig)
      problems.push({
        file,
        path: `${path}/gpuModel`,
        message: `${p.gpuModel} GPUs do not support MIG; use fractionMode fraction or time-slicing for this pool`,
      });
    else gpuModel = model.name;
  }
  if ((p.fractionMode === 'time-slicing' || p.fractionMode === 'mps') && p.replicas === undefined) {
    problems.push({
      file,
      path: `${path}/replicas`,
      message: `a ${p.fractionMode} pool needs replicas (the device plugin's replicas per GPU)`,
    });
  }
  problems.push(...draPoolProblems(p, file, path), ...devicePoolProblems(p, file, path));
  if (p.delivery !== undefined && p.fractionMode !== 'fraction')
    problems.push({
      file,
      path: `${path}/delivery`,
      message: `delivery applies to fractionMode fraction only (Tessera's node agent serves fraction nodes); remove it from this ${p.fractionMode} pool`,
    });
  if (p.taint && p.taint.key === '')
    problems.push({ file, path: `${path}/taint/key`, message: 'taint key must not be empty' });
  const taint = p.taint ? { key: p.taint.key, value: p.taint.value ?? '', effect: p.taint.effect } : null;
  return {
    name: p.name,
    nodeSelector: p.nodeSelector,
    taint,
    fractionMode: p.fractionMode,
    gpuModel,
    resource: p.resource ?? NVIDIA_GPU,
    replicas: p.replicas ?? null,
    deviceClasses: p.fractionMode === 'dra' ? (p.deviceClasses ?? []) : [],
    deviceResources: isDevicePoolMode(p.fractionMode)
      ? (p.deviceResources ?? []).map((d) => ({ resource: d.resource, perGpu: d.perGpu }))
      : [],
    delivery:
      p.delivery === undefined || p.fractionMode !== 'fraction'
        ? null
        : { mode: p.delivery.mode ?? 'auto', enforcement: p.delivery.enforcement ?? null },
  };
}

function addDocument(s: Sections, doc: SpecDocument, problems: PolicyProblem[]): void {
  const { file, spec } = doc;
  s.names.push(doc.name);
  if (spec.schedulerName !== undefined) {
    if (s.schedulerName !== null && s.schedulerName !== spec.schedulerName) {
      problems.push({
        file,
        path: '/spec/schedulerName',
        message: `"${spec.schedulerName}" contradicts "${s.schedulerName}" set by another file; set it in one file only`,
      });
    }
    s.schedulerName = spec.schedulerName;
  }
  s.admins.groups.push(...(spec.admins?.groups ?? []));
  s.acceleratorResources.include.push(...(spec.acceleratorResources?.include ?? []));
  s.acceleratorResources.exclude.push(...(spec.acceleratorResources?.exclude ?? []));
  s.admins.users.push(...(spec.admins?.users ?? []));
  const unique = (kind: string, name: string, path: string): boolean => {
    const key = `${kind}/${name}`;
    const first = s.origin.get(key);
    if (first !== undefined) {
      problems.push({
        file,
        path,
        message: `${kind} "${name}" is already defined in ${first}; names must be unique across all policy files`,
      });
      return false;
    }
    s.origin.set(key, file);
    return true;
  };
  (spec.pools ?? []).forEach((p, i) => {
    const path = `/spec/pools/${i}`;
    if (unique('pool', p.name, `${path}/name`)) s.pools.push(compilePool(p, file, path, problems));
  });
  (spec.tenants ?? []).forEach((t, i) => {
    if (!unique('tenant', t.name, `/spec/tenants/${i}/name`)) return;
    s.tenants.push({
      name: t.name,
      pools: t.pools,
      quotaGpus: t.quota?.gpus ?? null,
      maxGpusPerPod: t.maxGpusPerPod ?? null,
      priorityClasses: t.priorityClasses ?? null,
      shareGpuWith: t.shareGpuWith ?? 'any',
      mayPreempt: t.mayPreempt ?? [],
    });
  });
  (spec.rules ?? []).forEach((r, i) => {
    const path = `/spec/rules/${i}`;
    if (!unique('rule', r.name, `${path}/name`)) return;
    const rule = compileRule(r, file, path, problems);
    if (rule) s.rules.push(rule);
  });
}

export function mergeSections(docs: readonly SpecDocument[], problems: PolicyProblem[]): Sections {
  const s: Sections = {
    names: [],
    schedulerName: null,
    admins: { groups: [], users: [] },
    pools: [],
    tenants: [],
    rules: [],
    acceleratorResources: { include: [], exclude: [] },
    origin: new Map(),
  };
  for (const doc of docs) addDocument(s, doc, problems);
  return s;
}
