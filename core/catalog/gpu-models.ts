// GPU models as GFD names them (`nvidia.com/gpu.product`), with their memory and MIG family. A model name is
// accepted with or without GFD's `NVIDIA-` prefix; `-SHARED` and `-MIG-<profile>` suffixes are GFD decorations.

import { MIG_GEOMETRIES, type MigGeometry } from './mig-geometry.ts';

export interface GpuModel {
  /** Canonical name: the GFD product without the `NVIDIA-` prefix. */
  readonly name: string;
  readonly memoryMiB: number;
  readonly mig: MigGeometry | null;
}

const KNOWN: readonly GpuModel[] = [
  { name: 'A100-SXM4-40GB', memoryMiB: 40960, mig: MIG_GEOMETRIES['A100-40GB']! },
  { name: 'A100-PCIE-40GB', memoryMiB: 40960, mig: MIG_GEOMETRIES['A100-40GB']! },
  { name: 'A100-SXM4-80GB', memoryMiB: 81920, mig: MIG_GEOMETRIES['80GB']! },
  { name: 'A100-80GB-PCIe', memoryMiB: 81920, mig: MIG_GEOMETRIES['80GB']! },
  { name: 'H100-80GB-HBM3', memoryMiB: 81559, mig: MIG_GEOMETRIES['80GB']! },
  { name: 'H100-SXM5-80GB', memoryMiB: 81559, mig: MIG_GEOMETRIES['80GB']! },
  { name: 'H100-PCIe', memoryMiB: 81559, mig: MIG_GEOMETRIES['80GB']! },
  { name: 'H100-NVL', memoryMiB: 95830, mig: MIG_GEOMETRIES['H100-94GB']! },
  { name: 'H100-94GB', memoryMiB: 95830, mig: MIG_GEOMETRIES['H100-94GB']! },
  { name: 'H200', memoryMiB: 143771, mig: MIG_GEOMETRIES['H200-141GB']! },
  { name: 'H200-141GB', memoryMiB: 143771, mig: MIG_GEOMETRIES['H200-141GB']! },
  { name: 'A30', memoryMiB: 24576, mig: MIG_GEOMETRIES['A30-24GB']! },
  { name: 'A30-24GB', memoryMiB: 24576, mig: MIG_GEOMETRIES['A30-24GB']! },
  { name: 'L4', memoryMiB: 23034, mig: null },
  { name: 'L40S', memoryMiB: 46068, mig: null },
  { name: 'A10', memoryMiB: 23028, mig: null },
  { name: 'Tesla-T4', memoryMiB: 15360, mig: null },
  { name: 'Tesla-V100-SXM2-16GB', memoryMiB: 16384, mig: null },
  { name: 'Tesla-V100-SXM2-32GB', memoryMiB: 32768, mig: null },
];

const BY_NAME = new Map(KNOWN.map((m) => [m.name.toLowerCase(), m]));

/** Strips GFD decorations so that `NVIDIA-A100-SXM4-80GB-MIG-1g.10gb-SHARED` and `A100-SXM4-80GB` compare equal. */
export function canonicalModelName(product: string): string {
  let name = product.trim();
  if (/^nvidia-/i.test(name)) name = name.slice('NVIDIA-'.length);
  name = name.replace(/-SHARED$/i, '');
  name = name.replace(/-MIG-(?:\d+g\.\d+gb(?:\+me)?|INVALID)$/i, '');
  return name;
}

/** The catalog entry for a GFD product, or null for a model the catalog does not know. */
export function lookupModel(product: string): GpuModel | null {
  return BY_NAME.get(canonicalModelName(product).toLowerCase()) ?? null;
}

/** Whether a GPU's product satisfies a user's or policy's model name (prefix and decorations ignored, case-insensitive). */
export function modelMatches(product: string, wanted: string): boolean {
  return canonicalModelName(product).toLowerCase() === canonicalModelName(wanted).toLowerCase();
}

export function knownModels(): readonly GpuModel[] {
  return KNOWN;
}
