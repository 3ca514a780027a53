// The rule kinds of a policy file, each a pure check of one pod (or pod template) that reports with the rule's action.

import { DemandError } from '../../demand.ts';
import { GPU_MEMORY, isGpuResource } from '../../well-known-names.ts';
import { ruleApplies, type Rule } from '../../policy/model.ts';
import type { CheckContext, PodSubject, Violation } from '../check.ts';
import { allContainers } from '../pod-edits.ts';
import { candidateModels, memoryShareRange } from '../../pools/memory-share.ts';

type RuleOf<K extends Rule['kind']> = Extract<Rule, { kind: K }>;

function gpuRequest(rule: RuleOf<'GpuRequest'>, s: PodSubject): string[] {
  const out: string[] = [];
  if (s.demand instanceof DemandError) return out;
  const i = s.demand.intent;
  const f = s.demand.fraction;
  if (f?.memoryOnly && i.memoryMiB !== null) {
    if (rule.minMilli !== null) out.push(...memoryShareBelowMinimum(rule.minMilli, i.memoryMiB, f.milliPerGpu, s));
  } else {
    const milli = i.milli ?? (f && f.gpus === 1 ? f.milliPerGpu : null);
    if (rule.minMilli !== null && milli !== null && milli < rule.minMilli) {
      out.push(
        `the pod asks for ${milli / 1000} of a GPU; the minimum is ${rule.minMilli / 1000}. Ask for more, or share a pod with a colleague`,
      );
    }
  }
  if (rule.maxMemoryMiB !== null && i.memoryMiB !== null && i.memoryMiB > rule.maxMemoryMiB) {
    out.push(
      `${GPU_MEMORY} asks for ${i.memoryMiB} MiB; the maximum is ${rule.maxMemoryMiB} MiB. Ask for less or use whole GPUs`,
    );
  }
  if (rule.requireLimits) {
    for (const c of allContainers(s.pod.spec ?? {})) {
      for (const [key, value] of Object.entries(c.resources?.requests ?? {})) {
        if (!isGpuResource(key)) continue;
        const limit = c.resources?.limits?.[key];
        if (limit === undefined)
          out.push(`container ${c.name} requests ${key} without a limit; set GPU resources as limits`);
        else if (String(limit) !== String(value))
          out.push(
            `container ${c.name} requests ${key}=${value} but limits it to ${limit}; GPU requests must equal limits`,
          );
      }
    }
  }
  return out;
}

/**
 * minFraction judges a memory-only share by the share it really takes: its memory over the GPU's, on the roomiest GPU
 * model its pool may give it (where the share is smallest), so that no placement falls under the minimum
 * (docs/memory-asks.md).
 */
function memoryShareBelowMinimum(minMilli: number, memoryMiB: number, floorMilli: number, s: PodSubject): string[] {
  const pool = s.decision?.ok ? s.decision.pool : null;
  if (pool?.fractionMode !== 'fraction' || s.demand instanceof DemandError) return [];
  const range = memoryShareRange(candidateModels(pool, s.demand.models), memoryMiB, floorMilli);
  if (range === null || range.least.milli >= minMilli) return [];
  const { milli, model } = range.least;
  const needed = Math.ceil((minMilli * model.memoryMiB) / 1000);
  return [
    `the pod asks for ${memoryMiB} MiB of GPU memory alone, which is ${milli / 1000} of a ${model.name} (${model.memoryMiB} MiB), the roomiest GPU pool ${pool.name} may give it; the minimum share is ${minMilli / 1000}. Ask for at least ${needed} MiB, set tessera.io/gpu-fraction, or name smaller models with tessera.io/gpu-model`,
  ];
}

const NVIDIA_DEVICE_PATH = /^\/dev\/nvidia/;

function gpuBypass(s: PodSubject): string[] {
  const out: string[] = [];
  const spec = s.pod.spec ?? {};
  for (const c of allContainers(spec)) {
    if ((c.env ?? []).some((e) => e.name === 'NVIDIA_DRIVER_CAPABILITIES'))
      out.push(
        `container ${c.name} sets NVIDIA_DRIVER_CAPABILITIES, which widens what the GPU runtime exposes; remove it`,
      );
    if (s.tenantName !== null && c.securityContext?.privileged === true)
      out.push(`container ${c.name} is privileged, which exposes every GPU of the node; remove privileged: true`);
  }
  if (s.tenantName !== null) {
    for (const v of spec.volumes ?? []) {
      const path = v.hostPath?.path;
      if (path !== undefined && (NVIDIA_DEVICE_PATH.test(path) || path === '/dev' || path === '/dev/')) {
        out.push(`volume ${v.name} mounts host path ${path}, a direct path to the node's GPUs; remove it`);
      }
    }
  }
  const pool = s.decision?.ok ? s.decision.pool : null;
  if (spec.hostIPC === true && pool?.fractionMode === 'mps')
    out.push(`hostIPC on MPS pool ${pool.name} lets the pod reach other tenants' MPS daemons; remove hostIPC`);
  return out;
}

function imageRegistry(rule: RuleOf<'ImageRegistry'>, s: PodSubject): string[] {
  const out: string[] = [];
  for (const c of allContainers(s.pod.spec ?? {})) {
    const image = c.image ?? '';
    if (!rule.allowed.some((prefix) => image.startsWith(prefix))) {
      out.push(
        `container ${c.name} uses image "${image}", which is not from an allowed registry (${rule.allowed.join(', ')}); push the image there and use that reference`,
      );
    }
  }
  return out;
}

function requiredLabels(rule: RuleOf<'RequiredLabels'>, s: PodSubject): string[] {
  const labels = s.pod.metadata?.labels ?? {};
  const out: string[] = [];
  for (const { key, pattern, source } of rule.labels) {
    const value = labels[key];
    if (value === undefined) out.push(`label ${key} is missing; add it (it must match /${source}/)`);
    else if (!pattern.test(value)) out.push(`label ${key}="${value}" does not match /${source}/; fix its value`);
  }
  return out;
}

function immutableFields(rule: RuleOf<'ImmutableFields'>, s: PodSubject, ctx: CheckContext): string[] {
  if (ctx.operation !== 'UPDATE' || s.old === null || s.template || ctx.system) return [];
  const out: string[] = [];
  const compare = (
    kind: 'annotation' | 'label',
    keys: readonly string[],
    now: Record<string, string>,
    before: Record<string, string>,
  ) => {
    for (const key of keys) {
      if (now[key] !== before[key]) {
        out.push(
          `${kind} ${key} may not change after admission (was ${before[key] === undefined ? 'unset' : `"${before[key]}"`}, now ${now[key] === undefined ? 'unset' : `"${now[key]}"`}); recreate the pod to change it`,
        );
      }
    }
  };
  compare('annotation', rule.annotations, s.pod.metadata?.annotations ?? {}, s.old.metadata?.annotations ?? {});
  compare('label', rule.labels, s.pod.metadata?.labels ?? {}, s.old.metadata?.labels ?? {});
  return out;
}

function runtimeClass(rule: RuleOf<'RuntimeClass'>, s: PodSubject): string[] {
  if (!s.gpu) return [];
  // A VM's devices reach it through VFIO or mediated devices, never through the GPU container runtime.
  if (!(s.demand instanceof DemandError) && Object.keys(s.demand.devices).length > 0) return [];
  const actual = s.pod.spec?.runtimeClassName;
  return actual === rule.gpuPods
    ? []
    : [
        `GPU pods must run with runtimeClassName ${rule.gpuPods} (this one has ${actual ?? 'none'}); set spec.runtimeClassName: ${rule.gpuPods}`,
      ];
}

function evaluate(rule: Rule, s: PodSubject, ctx: CheckContext): string[] {
  switch (rule.kind) {
    case 'GpuRequest':
      return s.gpu ? gpuRequest(rule, s) : [];
    case 'GpuBypass':
      return gpuBypass(s);
    case 'ImageRegistry':
      return imageRegistry(rule, s);
    case 'RequiredLabels':
      return requiredLabels(rule, s);
    case 'ImmutableFields':
      return immutableFields(rule, s, ctx);
    case 'RuntimeClass':
      return runtimeClass(rule, s);
  }
}

/** Violations of the policy's rules that apply to the subject's tenant and namespace. */
export function policyRuleViolations(s: PodSubject, ctx: CheckContext): Violation[] {
  const out: Violation[] = [];
  const hasBypassRule = ctx.policy.rules.some((r) => r.kind === 'GpuBypass');
  for (const rule of ctx.policy.rules) {
    if (!ruleApplies(rule, s.tenantName, s.namespace)) continue;
    for (const message of evaluate(rule, s, ctx))
      out.push({ rule: rule.name, action: rule.action, message: `${s.where}${message}` });
  }
  // Without a GpuBypass rule the bypass paths are still closed (DESIGN: privileged GPU access paths are denied).
  if (!hasBypassRule)
    for (const message of gpuBypass(s))
      out.push({ rule: 'tessera/gpu-bypass', action: 'enforce', message: `${s.where}${message}` });
  return out;
}
