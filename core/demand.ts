// What a pod asks for: effective CPU/memory requests (Kubernetes' rule for init and sidecar containers), its GPU
// resources, and the Tessera annotations. Invalid input raises DemandError with a message a user can act on.

import { BUILT_IN_ACCELERATORS, type AcceleratorNames } from './accelerators/resource-names.ts';
import { MIG_PROFILE_PATTERN } from './catalog/mig-geometry.ts';
import type { KubeContainer, KubePod, ResourceList } from './kube-objects.ts';
import {
  GPU_COUNT,
  GPU_FRACTION,
  GPU_MEMORY,
  GPU_MILLI,
  GPU_MODEL,
  MIG_PROFILE,
  NVIDIA_GPU,
  NVIDIA_GPU_SHARED,
  NVIDIA_MIG_PREFIX,
  POOL_ANNOTATION,
  TOPOLOGY,
  isGpuResource,
} from './well-known-names.ts';
import { cpuMilli, memoryMiB, parseQuantity, QuantityError } from './quantity.ts';

export class DemandError extends Error {
  override name = 'DemandError';
  /** The field at fault, e.g. `metadata.annotations["tessera.io/gpu-fraction"]`. */
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

export type TopologyRequirement = 'nvlink' | 'numa' | 'none';

/** The GPU intent a user states with annotations, before the webhook turns it into resources. */
export interface GpuIntent {
  /** Share of one GPU in thousandths (gpu-fraction), or null. */
  readonly milli: number | null;
  readonly memoryMiB: number | null;
  readonly count: number | null;
  readonly migProfile: string | null;
  readonly pool: string | null;
}

/** Tessera fraction demand on a fraction node: one GPU share, or whole GPUs (milliPerGpu = 1000). */
export interface FractionDemand {
  readonly gpus: number;
  readonly milliPerGpu: number;
  /** GPU memory per GPU; null means "the same share of memory as of compute". */
  readonly memoryMiB: number | null;
  /** True when only memory was asked for: compute then follows memory on each GPU model. */
  readonly memoryOnly: boolean;
}

export interface PodDemand {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly cpuMilli: number;
  readonly memoryMiB: number;
  /** Effective requests of GPU resources (tessera.io/gpu-milli, nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-*). */
  readonly gpuResources: Readonly<Record<string, number>>;
  /**
   * Effective requests of the other accelerator resources (core/accelerators): the devices KubeVirt's GPU device
   * plugins advertise for VMs, and any vendor's accelerator. Only those a pool maps can be admitted.
   */
  readonly devices: Readonly<Record<string, number>>;
  readonly fraction: FractionDemand | null;
  /** Allowed GPU models (canonical or GFD names), or null for any. */
  readonly models: readonly string[] | null;
  readonly topology: TopologyRequirement | null;
  readonly intent: GpuIntent;
}

const ANNOTATION = (key: string): string => `metadata.annotations["${key}"]`;

function requestOf(container: KubeContainer, resource: string): string | number | undefined {
  return container.resources?.requests?.[resource] ?? container.resources?.limits?.[resource];
}

function resourceNames(containers: readonly KubeContainer[], overhead: ResourceList | null | undefined): Set<string> {
  const names = new Set<string>(Object.keys(overhead ?? {}));
  for (const c of containers) {
    for (const key of Object.keys(c.resources?.requests ?? {})) names.add(key);
    for (const key of Object.keys(c.resources?.limits ?? {})) names.add(key);
  }
  return names;
}

/**
 * Kubernetes' effective request for one resource: the larger of (app containers + sidecars) and, for each regular init
 * container, its own request plus the sidecars started before it; plus pod overhead.
 */
export function effectiveRequest(pod: KubePod, resource: string, read: (raw: string | number) => number): number {
  const spec = pod.spec ?? {};
  let sidecars = 0;
  let initPeak = 0;
  for (const c of spec.initContainers ?? []) {
    const raw = requestOf(c, resource);
    const value = raw === undefined ? 0 : read(raw);
    if (c.restartPolicy === 'Always') sidecars += value;
    else initPeak = Math.max(initPeak, value + sidecars);
  }
  let app = 0;
  for (const c of spec.containers ?? []) {
    const raw = requestOf(c, resource);
    if (raw !== undefined) app += read(raw);
  }
  const overhead = spec.overhead?.[resource];
  return Math.max(app + sidecars, initPeak) + (overhead === undefined ? 0 : read(overhead));
}

export function wholeCount(raw: string | number): number {
  const value = parseQuantity(raw);
  if (!Number.isInteger(value) || value < 0) throw new QuantityError(`"${raw}" must be a whole, non-negative number`);
  return value;
}

function parseFraction(text: string): number {
  const field = ANNOTATION(GPU_FRACTION);
  if (!/^(?:0?\.\d+|1(?:\.0*)?|0|\d+(?:\.\d+)?)$/.test(text.trim())) {
    throw new DemandError(
      field,
      `${GPU_FRACTION}="${text}" is not a number; write a share of one GPU such as "0.25", "0.5" or "1"`,
    );
  }
  const f = Number(text);
  if (!(f > 0 && f <= 1)) {
    throw new DemandError(
      field,
      `${GPU_FRACTION}="${text}" is outside 0 < f <= 1; for more than one GPU use ${GPU_COUNT} instead`,
    );
  }
  return Math.ceil(f * 1000 - 1e-9);
}

function parseIntent(annotations: Record<string, string>): GpuIntent {
  const fractionText = annotations[GPU_FRACTION];
  const memoryText = annotations[GPU_MEMORY];
  const countText = annotations[GPU_COUNT];
  const profileText = annotations[MIG_PROFILE];
  const milli = fractionText === undefined ? null : parseFraction(fractionText);
  let memory: number | null = null;
  if (memoryText !== undefined) {
    try {
      memory = memoryMiB(memoryText);
    } catch {
      throw new DemandError(
        ANNOTATION(GPU_MEMORY),
        `${GPU_MEMORY}="${memoryText}" is not a Kubernetes quantity; write GPU memory such as "10Gi" or "4096Mi"`,
      );
    }
    if (memory <= 0)
      throw new DemandError(ANNOTATION(GPU_MEMORY), `${GPU_MEMORY}="${memoryText}" must be more than zero`);
  }
  let count: number | null = null;
  if (countText !== undefined) {
    if (!/^\d+$/.test(countText.trim()) || Number(countText) < 1) {
      throw new DemandError(
        ANNOTATION(GPU_COUNT),
        `${GPU_COUNT}="${countText}" must be a whole number of GPUs, 1 or more; for a share of one GPU use ${GPU_FRACTION}`,
      );
    }
    count = Number(countText);
  }
  let migProfile: string | null = null;
  if (profileText !== undefined) {
    const cleaned = profileText.trim().replace(/^nvidia\.com\/mig-/, '');
    if (!MIG_PROFILE_PATTERN.test(cleaned)) {
      throw new DemandError(
        ANNOTATION(MIG_PROFILE),
        `${MIG_PROFILE}="${profileText}" is not a MIG profile; write one such as "1g.10gb", "2g.20gb" or "1g.10gb+me"`,
      );
    }
    migProfile = cleaned;
  }
  if (count !== null && count > 1 && (milli !== null || memory !== null)) {
    throw new DemandError(
      ANNOTATION(GPU_COUNT),
      `${GPU_COUNT}=${count} cannot be combined with ${milli !== null ? GPU_FRACTION : GPU_MEMORY}: a pod gets either a share of one GPU or whole GPUs`,
    );
  }
  if (migProfile !== null && (milli !== null || memory !== null || (count !== null && count > 1))) {
    throw new DemandError(
      ANNOTATION(MIG_PROFILE),
      `${MIG_PROFILE} names the exact slice; remove ${milli !== null ? GPU_FRACTION : memory !== null ? GPU_MEMORY : GPU_COUNT} or the profile`,
    );
  }
  const pool = annotations[POOL_ANNOTATION]?.trim() || null;
  return { milli, memoryMiB: memory, count, migProfile, pool };
}

function parseModels(text: string | undefined): string[] | null {
  if (text === undefined) return null;
  const models = text
    .split('|')
    .map((m) => m.trim())
    .filter((m) => m !== '');
  if (models.length === 0)
    throw new DemandError(
      ANNOTATION(GPU_MODEL),
      `${GPU_MODEL}="${text}" names no model; write GFD product names separated by "|", e.g. "A100-SXM4-80GB|H100-80GB-HBM3"`,
    );
  return models;
}

function parseTopology(text: string | undefined): TopologyRequirement | null {
  if (text === undefined) return null;
  const t = text.trim();
  if (t === 'nvlink' || t === 'numa' || t === 'none') return t;
  throw new DemandError(ANNOTATION(TOPOLOGY), `${TOPOLOGY}="${text}" must be nvlink, numa or none`);
}

function gpuResourceRequests(pod: KubePod, which: (resource: string) => boolean): Record<string, number> {
  const spec = pod.spec ?? {};
  const all = [...(spec.containers ?? []), ...(spec.initContainers ?? [])];
  const out: Record<string, number> = {};
  for (const resource of resourceNames(all, null)) {
    if (!which(resource)) continue;
    for (const c of all) {
      const req = c.resources?.requests?.[resource];
      const lim = c.resources?.limits?.[resource];
      if (req !== undefined && lim === undefined) {
        throw new DemandError(
          `spec.containers["${c.name}"].resources`,
          `container ${c.name} requests ${resource} without a limit; set GPU resources as limits (requests may be omitted)`,
        );
      }
      if (req !== undefined && lim !== undefined && String(req) !== String(lim)) {
        throw new DemandError(
          `spec.containers["${c.name}"].resources`,
          `${resource} request (${req}) differs from its limit (${lim}); extended resources need requests equal to limits`,
        );
      }
    }
    let value: number;
    try {
      value = effectiveRequest(pod, resource, wholeCount);
    } catch (e) {
      throw new DemandError(
        `spec.containers[*].resources["${resource}"]`,
        `${resource}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    if (value > 0) out[resource] = value;
  }
  return out;
}

function fractionDemand(resources: Record<string, number>, intent: GpuIntent): FractionDemand | null {
  const milli = resources[GPU_MILLI];
  if (milli === undefined) return null;
  const field = `spec.containers[*].resources["${GPU_MILLI}"]`;
  if (milli > 1000 && milli % 1000 !== 0) {
    throw new DemandError(
      field,
      `${GPU_MILLI}=${milli} is above one GPU but not a multiple of 1000; ask for a share of one GPU (<= 1000) or whole GPUs (2000, 3000, ...)`,
    );
  }
  const others = Object.keys(resources).filter((r) => r !== GPU_MILLI);
  if (others.length > 0) {
    throw new DemandError(
      field,
      `${GPU_MILLI} cannot be combined with ${others.join(', ')}: a pod uses either Tessera fractions or device-plugin GPUs`,
    );
  }
  const whole = milli > 1000 || (milli === 1000 && intent.memoryMiB === null);
  return {
    gpus: milli > 1000 ? milli / 1000 : 1,
    milliPerGpu: Math.min(milli, 1000),
    memoryMiB: whole ? null : intent.memoryMiB,
    memoryOnly: intent.milli === null && intent.memoryMiB !== null && milli <= 1000,
  };
}

/**
 * Reads a pod's demand. Throws DemandError (or wraps QuantityError into it) when the pod is malformed. `accelerators`
 * says which other resources are accelerator devices (the policy's list; the built-in one without a policy).
 */
export function readDemand(pod: KubePod, accelerators: AcceleratorNames = BUILT_IN_ACCELERATORS): PodDemand {
  const meta = pod.metadata ?? {};
  const annotations = meta.annotations ?? {};
  const intent = parseIntent(annotations);
  let cpu: number;
  let memory: number;
  try {
    cpu = effectiveRequest(pod, 'cpu', cpuMilli);
    memory = effectiveRequest(pod, 'memory', memoryMiB);
  } catch (e) {
    throw new DemandError(
      'spec.containers[*].resources',
      `CPU or memory request unreadable: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  const gpuResources = gpuResourceRequests(pod, isGpuResource);
  const devices = gpuResourceRequests(pod, (r) => accelerators.isDevice(r));
  const native = Object.keys(gpuResources);
  if (native.length > 0 && Object.keys(devices).length > 0) {
    throw new DemandError(
      'spec.containers[*].resources',
      `${native.join(', ')} and ${Object.keys(devices).join(', ')} in one pod: a pod asks for container GPUs or for devices, not both`,
    );
  }
  const migKinds = Object.keys(gpuResources).filter((r) => r.startsWith(NVIDIA_MIG_PREFIX));
  for (const r of migKinds) {
    if (!MIG_PROFILE_PATTERN.test(r.slice(NVIDIA_MIG_PREFIX.length))) {
      throw new DemandError(
        `spec.containers[*].resources["${r}"]`,
        `${r} is not a MIG resource name; expected nvidia.com/mig-<g>g.<n>gb, e.g. nvidia.com/mig-1g.10gb`,
      );
    }
  }
  if (gpuResources[NVIDIA_GPU] !== undefined && gpuResources[NVIDIA_GPU_SHARED] !== undefined) {
    throw new DemandError(
      'spec.containers[*].resources',
      `${NVIDIA_GPU} and ${NVIDIA_GPU_SHARED} in one pod: ask for whole GPUs or time-slice replicas, not both`,
    );
  }
  return {
    uid: meta.uid ?? '',
    namespace: meta.namespace ?? '',
    name: meta.name ?? '',
    cpuMilli: cpu,
    memoryMiB: memory,
    gpuResources,
    devices,
    fraction: fractionDemand(gpuResources, intent),
    models: parseModels(annotations[GPU_MODEL]),
    topology: parseTopology(annotations[TOPOLOGY]),
    intent,
  };
}

/** Whether the pod carries any GPU demand, as resources or as Tessera annotations. */
export function wantsGpu(demand: PodDemand): boolean {
  const i = demand.intent;
  return (
    Object.keys(demand.gpuResources).length > 0 ||
    Object.keys(demand.devices).length > 0 ||
    i.milli !== null ||
    i.memoryMiB !== null ||
    i.count !== null ||
    i.migProfile !== null
  );
}

export type DemandResult =
  | { readonly ok: true; readonly demand: PodDemand }
  | { readonly ok: false; readonly error: DemandError };

/** readDemand for callers that branch on a malformed pod instead of catching. */
export function parseDemand(pod: KubePod, accelerators?: AcceleratorNames): DemandResult {
  try {
    return { ok: true, demand: readDemand(pod, accelerators) };
  } catch (e) {
    return {
      ok: false,
      error: e instanceof DemandError ? e : new DemandError('pod', e instanceof Error ? e.message : String(e)),
    };
  }
}
