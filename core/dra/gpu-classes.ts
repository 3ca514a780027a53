// Which DeviceClasses reach GPUs. A DeviceClass is a GPU class when any pool lists it, when it is a class of a GPU
// driver by name (NVIDIA's gpu.nvidia.com and mig.nvidia.com, and any *.gpu.nvidia.com such as vfio.gpu.nvidia.com),
// or when a DeviceClass in the cluster has selectors that name such a driver. A class with no selector that names a
// driver or attribute domain selects every device of a node, GPUs included. Selectors are CEL; Tessera does not
// evaluate them, it reads the string literals and the few comparisons NVIDIA's classes and claims use.

import type { Policy } from '../policy/model.ts';
import type { DraLookup } from './lookup.ts';
import type { DeviceSelector, KubeDeviceClass } from './objects.ts';

/** KEP-5004: every DeviceClass `c` backs the extended resource `deviceclass.resource.kubernetes.io/c`. */
export const DEVICECLASS_RESOURCE_PREFIX = 'deviceclass.resource.kubernetes.io/';

/** GPU drivers and their classes, by name: NVIDIA's driver `gpu.nvidia.com`, its MIG class, and `*.gpu.nvidia.com`. */
export function isGpuDriverName(name: string): boolean {
  return name === 'gpu.nvidia.com' || name === 'mig.nvidia.com' || name.endsWith('.gpu.nvidia.com');
}

const LITERAL = /'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"/g;
const DOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$/;

function literalsOf(expression: string): string[] {
  return [...expression.matchAll(LITERAL)].map((m) => m[1] ?? m[2] ?? '');
}

/** What Tessera reads from a list of CEL selectors. */
export interface SelectorFacts {
  /** GPU driver names the selectors mention (as `device.driver == '...'` or an attribute domain). */
  readonly gpuDrivers: readonly string[];
  /** Whether any selector names a driver or attribute domain at all (a DNS-subdomain string literal). */
  readonly namesDomain: boolean;
  /** A MIG profile the selectors pin (`...profile == '1g.10gb'`), if any. */
  readonly profile: string | null;
  /** The selectors pick MIG devices (`type == 'mig'`). */
  readonly mig: boolean;
  /** The selectors pick devices that several claims may share (`device.allowMultipleAllocations`). */
  readonly shareable: boolean;
}

const PROFILE = /\bprofile\s*==\s*['"]([^'"]+)['"]|['"]([^'"]+)['"]\s*==\s*[\w.[\]'"]*\bprofile\b/;
const MIG_TYPE = /\btype\s*==\s*['"]mig['"]|['"]mig['"]\s*==\s*[\w.[\]'"]*\btype\b/;
const SHAREABLE = /device\.allowMultipleAllocations(?!\s*==\s*false)/;
const NOT_SHAREABLE = /!\s*device\.allowMultipleAllocations/;

export function selectorFacts(selectors: readonly DeviceSelector[] | null | undefined): SelectorFacts {
  const gpuDrivers = new Set<string>();
  let namesDomain = false;
  let profile: string | null = null;
  let mig = false;
  let shareable = false;
  for (const s of selectors ?? []) {
    const expression = s?.cel?.expression ?? '';
    for (const literal of literalsOf(expression)) {
      if (!DOMAIN.test(literal)) continue;
      namesDomain = true;
      if (isGpuDriverName(literal)) gpuDrivers.add(literal);
    }
    const p = PROFILE.exec(expression);
    if (p && profile === null) profile = p[1] ?? p[2] ?? null;
    if (MIG_TYPE.test(expression)) mig = true;
    if (SHAREABLE.test(expression) && !NOT_SHAREABLE.test(expression)) shareable = true;
  }
  return { gpuDrivers: [...gpuDrivers], namesDomain, profile, mig, shareable };
}

/**
 * How far a DeviceClass reaches: `gpu` (a GPU class), `all-devices` (it exists and no selector names a driver or
 * domain: every device matches), `other` (its selectors pin non-GPU drivers) or `unknown` (not in the cluster).
 */
export type ClassReach = 'gpu' | 'all-devices' | 'other' | 'unknown';

export function classReach(name: string, policy: Policy, lookup: DraLookup): ClassReach {
  if (isGpuDriverName(name) || policy.pools.some((p) => p.deviceClasses.includes(name))) return 'gpu';
  const cls = lookup.deviceClass(name);
  if (!cls) return 'unknown';
  const facts = selectorFacts(cls.spec?.selectors);
  if (facts.gpuDrivers.length > 0) return 'gpu';
  return facts.namesDomain ? 'other' : 'all-devices';
}

function created(c: KubeDeviceClass): number {
  const t = c.metadata?.creationTimestamp;
  const ms = t instanceof Date ? t.getTime() : typeof t === 'string' ? Date.parse(t) : Number.NaN;
  return Number.isNaN(ms) ? 0 : ms;
}

/**
 * The DeviceClass that backs an extended resource (KEP-5004): the implicit `deviceclass.resource.kubernetes.io/<class>`,
 * or the class whose spec.extendedResourceName is the resource (the class created last wins; at the same time, the
 * first by name, as kube-scheduler picks).
 */
export function classOfExtendedResource(resource: string, lookup: DraLookup): string | null {
  if (resource.startsWith(DEVICECLASS_RESOURCE_PREFIX)) return resource.slice(DEVICECLASS_RESOURCE_PREFIX.length);
  let best: KubeDeviceClass | null = null;
  for (const c of lookup.deviceClasses()) {
    if (c.spec?.extendedResourceName !== resource) continue;
    if (
      best === null ||
      created(c) > created(best) ||
      (created(c) === created(best) && (c.metadata?.name ?? '') < (best.metadata?.name ?? ''))
    )
      best = c;
  }
  return best?.metadata?.name ?? null;
}
