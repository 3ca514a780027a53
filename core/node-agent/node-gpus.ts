// The node's GPUs as the NVIDIA kernel driver lists them: one directory per GPU under /proc/driver/nvidia/gpus, named
// by PCI bus location, holding an `information` file. The file's lines are "Key: \t value"; the keys read here are
// printed by NVIDIA/open-gpu-kernel-modules kernel-open/nvidia/nv-procfs.c (nv_procfs_read_gpu_info): `Model:`,
// `IRQ:`, `GPU UUID:`, `Video BIOS:`, `Bus Type:`, `DMA Size:`, `DMA Mask:`, `Bus Location:`, `Device Minor:`,
// `GPU Excluded:`. The index is the GPU's position in PCI bus order, the order nvidia-smi and NVML number GPUs in
// and the order GFD's nvidia.com/gpu.count and Tessera's assignment indices refer to.

export interface NodeGpu {
  /** Position in PCI bus order: the index in `tessera.io/assignment`. */
  readonly index: number;
  readonly uuid: string;
  /** N of /dev/nvidiaN. */
  readonly minor: number;
  readonly busId: string;
  readonly model: string;
}

export interface GpuInformation {
  readonly uuid: string;
  readonly minor: number;
  readonly busId: string;
  readonly model: string;
  /** `GPU Excluded: Yes`: the driver holds the GPU out of use (nvidia.ko NVreg_ExcludedGpus). */
  readonly excluded: boolean;
}

const UUID = /^GPU-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Parses one `information` file; `dirName` is its directory (the bus location). Returns an error message instead of throwing. */
export function parseGpuInformation(dirName: string, text: string): GpuInformation | string {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const uuid = fields.get('GPU UUID');
  const minorText = fields.get('Device Minor');
  const where = `/proc/driver/nvidia/gpus/${dirName}/information`;
  if (uuid === undefined || !UUID.test(uuid))
    return `${where}: no valid "GPU UUID:" line (got ${JSON.stringify(uuid ?? null)})`;
  if (minorText === undefined || !/^\d+$/.test(minorText))
    return `${where}: no valid "Device Minor:" line (got ${JSON.stringify(minorText ?? null)})`;
  return {
    uuid,
    minor: Number(minorText),
    busId: (fields.get('Bus Location') ?? dirName).toLowerCase(),
    model: fields.get('Model') ?? 'unknown',
    excluded: (fields.get('GPU Excluded') ?? fields.get('Blacklisted') ?? 'No') === 'Yes',
  };
}

/** Numbers the usable GPUs in PCI bus order (domain:bus:device.function, compared as hex numbers). */
export function orderGpus(found: readonly GpuInformation[]): NodeGpu[] {
  const key = (busId: string) =>
    busId
      .split(/[:.]/)
      .map((part) => Number.parseInt(part, 16))
      .map((n) => (Number.isNaN(n) ? 0 : n));
  const compare = (a: GpuInformation, b: GpuInformation) => {
    const ka = key(a.busId);
    const kb = key(b.busId);
    for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
      const d = (ka[i] ?? 0) - (kb[i] ?? 0);
      if (d !== 0) return d;
    }
    return a.busId.localeCompare(b.busId);
  };
  return [...found]
    .filter((g) => !g.excluded)
    .sort(compare)
    .map((g, index) => ({ index, uuid: g.uuid, minor: g.minor, busId: g.busId, model: g.model }));
}

/** UUIDs of the known GPUs the driver no longer lists (or now excludes): their devices turn Unhealthy. */
export function missingGpus(known: readonly NodeGpu[], found: readonly GpuInformation[]): Set<string> {
  const present = new Set(found.filter((g) => !g.excluded).map((g) => g.uuid));
  return new Set(known.filter((g) => !present.has(g.uuid)).map((g) => g.uuid));
}
