// DRA inventory: the GPUs and MIG devices a GPU driver publishes in ResourceSlices (NVIDIA's gpu.nvidia.com: devices
// `gpu-<minor>` of type gpu with uuid, productName and memory; MIG devices of type mig with profile and parentUUID),
// per node, from the newest generation of each pool; and what is taken, from ResourceClaims' status.allocation.

import { canonicalModelName, lookupModel } from '../catalog/gpu-models.ts';
import { MIG_PROFILE_PATTERN } from '../catalog/mig-geometry.ts';
import { memoryMiB } from '../quantity.ts';
import { isGpuDriverName } from './gpu-classes.ts';
import type { DeviceAttribute, KubeResourceClaim, KubeResourceSlice, SliceDevice } from './objects.ts';

export type DraDeviceKind = 'gpu' | 'mig';

export interface DraDevice {
  /** `driver/pool/device`: how allocation results name it. */
  readonly key: string;
  readonly driver: string;
  readonly pool: string;
  readonly name: string;
  readonly kind: DraDeviceKind;
  readonly uuid: string | null;
  /** A MIG device's GPU. */
  readonly parentUuid: string | null;
  readonly profile: string | null;
  readonly memoryMiB: number | null;
  readonly productName: string | null;
  /** Several claims may hold a share of it (consumable capacity). */
  readonly shareable: boolean;
}

export interface DraNode {
  readonly node: string;
  readonly devices: readonly DraDevice[];
  /** Canonical GPU model (from productName, e.g. "NVIDIA H100 80GB HBM3" -> H100-80GB-HBM3), or null. */
  readonly model: string | null;
  /** Memory of one whole GPU, MiB (the devices' capacity, else the catalog's). */
  readonly gpuMemoryMiB: number | null;
  /** Physical GPUs: whole-GPU devices, and the parents of MIG devices whose GPU is not published whole. */
  readonly physicalGpus: number;
}

export const deviceKey = (driver: string, pool: string, device: string): string => `${driver}/${pool}/${device}`;

function text(a: DeviceAttribute | undefined): string | null {
  return typeof a?.string === 'string' ? a.string : null;
}

/** NVIDIA's productName ("NVIDIA H100 80GB HBM3") as a GFD-style canonical model name ("H100-80GB-HBM3"). */
export function modelOfProduct(product: string | null): string | null {
  if (product === null || product.trim() === '') return null;
  return canonicalModelName(product.trim().replace(/\s+/g, '-'));
}

function readDevice(driver: string, pool: string, d: SliceDevice): DraDevice | null {
  const attributes = d.attributes ?? {};
  const type = text(attributes.type);
  const profile = text(attributes.profile);
  const kind: DraDeviceKind | null =
    type === 'gpu' ? 'gpu' : type === 'mig' || (profile !== null && MIG_PROFILE_PATTERN.test(profile)) ? 'mig' : null;
  if (kind === null || !d.name) return null;
  let memory: number | null = null;
  const raw = d.capacity?.memory?.value;
  if (raw !== undefined) {
    try {
      memory = memoryMiB(raw);
    } catch {
      memory = null;
    }
  }
  return {
    key: deviceKey(driver, pool, d.name),
    driver,
    pool,
    name: d.name,
    kind,
    uuid: text(attributes.uuid),
    parentUuid: text(attributes.parentUUID),
    profile: kind === 'mig' ? profile : null,
    memoryMiB: memory,
    productName: text(attributes.productName),
    shareable: d.allowMultipleAllocations === true,
  };
}

/** Per node, the GPU devices of GPU drivers' ResourceSlices (only each pool's newest generation counts). */
export function readSlices(slices: Iterable<KubeResourceSlice>): Map<string, DraNode> {
  const newest = new Map<string, number>();
  const all: KubeResourceSlice[] = [];
  for (const s of slices) {
    const driver = s.spec?.driver ?? '';
    if (!isGpuDriverName(driver) || !s.spec?.nodeName) continue;
    all.push(s);
    const poolKey = `${driver}/${s.spec.pool?.name ?? ''}`;
    newest.set(poolKey, Math.max(newest.get(poolKey) ?? 0, s.spec.pool?.generation ?? 0));
  }
  const byNode = new Map<string, DraDevice[]>();
  for (const s of all) {
    const driver = s.spec!.driver!;
    const pool = s.spec!.pool?.name ?? '';
    if ((s.spec!.pool?.generation ?? 0) < (newest.get(`${driver}/${pool}`) ?? 0)) continue;
    const node = s.spec!.nodeName!;
    const list = byNode.get(node) ?? [];
    for (const d of s.spec!.devices ?? []) {
      const device = readDevice(driver, pool, d);
      if (device) list.push(device);
    }
    byNode.set(node, list);
  }
  const out = new Map<string, DraNode>();
  for (const [node, devices] of byNode) {
    devices.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const product = devices.find((d) => d.productName !== null)?.productName ?? null;
    const model = modelOfProduct(product);
    const wholes = devices.filter((d) => d.kind === 'gpu');
    const wholeUuids = new Set(wholes.map((d) => d.uuid));
    const orphanParents = new Set(
      devices.filter((d) => d.kind === 'mig' && !wholeUuids.has(d.parentUuid)).map((d) => d.parentUuid ?? d.key),
    );
    const gpuMemory =
      wholes.find((d) => d.memoryMiB !== null)?.memoryMiB ?? lookupModel(model ?? '')?.memoryMiB ?? null;
    out.set(node, { node, devices, model, gpuMemoryMiB: gpuMemory, physicalGpus: wholes.length + orphanParents.size });
  }
  return out;
}

/** One device an allocated claim holds. */
export interface HeldDevice {
  readonly key: string;
  readonly claim: string;
  /** The claim's namespace (its tenant's). */
  readonly namespace: string;
  /** Memory consumed on a shareable device (consumedCapacity), or null for the whole device. */
  readonly memoryMiB: number | null;
}

/** The devices an allocated claim holds; adminAccess results hold nothing (they watch devices others use). */
export function heldDevices(claim: KubeResourceClaim): HeldDevice[] {
  const out: HeldDevice[] = [];
  const namespace = claim.metadata?.namespace ?? '';
  const name = `${namespace}/${claim.metadata?.name ?? ''}`;
  for (const r of claim.status?.allocation?.devices?.results ?? []) {
    if (!r?.driver || !r.pool || !r.device || r.adminAccess === true) continue;
    let memory: number | null = null;
    const consumed = r.consumedCapacity?.memory;
    if (consumed !== undefined) {
      try {
        memory = memoryMiB(consumed);
      } catch {
        memory = null;
      }
    }
    out.push({ key: deviceKey(r.driver, r.pool, r.device), claim: name, namespace, memoryMiB: memory });
  }
  return out;
}
