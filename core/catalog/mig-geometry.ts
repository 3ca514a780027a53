// MIG geometry per GPU family: which GPU-instance profiles exist, how many compute and memory slices each takes,
// and the memory-slice offsets where NVML may place it. Placements are in memory-slice units (nvmlGpuInstancePlacement_t);
// sources and caveats are in shared/reference/k8s-protocols-and-mig.md section 3.

export interface MigProfile {
  /** Profile name as the device plugin advertises it after `nvidia.com/mig-`, e.g. "2g.20gb" or "1g.10gb+me". */
  readonly name: string;
  readonly computeSlices: number;
  /** Memory slices occupied: the placement size. */
  readonly memorySlices: number;
  /** Legal start offsets, in memory slices. */
  readonly starts: readonly number[];
  /** Most instances of this profile one GPU can hold. */
  readonly maxInstances: number;
  readonly memoryMiB: number;
  /** A `+me` profile carries the GPU's only media-engine set, so at most one per GPU. */
  readonly mediaExtensions: boolean;
}

export interface MigGeometry {
  readonly family: string;
  readonly computeSlices: number;
  readonly memorySlices: number;
  readonly profiles: readonly MigProfile[];
}

interface ProfileSpec {
  g: number;
  gb: number;
  size: number;
  starts: number[];
  max: number;
  me?: boolean;
}

function geometry(
  family: string,
  computeSlices: number,
  memorySlices: number,
  sliceMiB: Readonly<Record<number, number>>,
  specs: ProfileSpec[],
): MigGeometry {
  const profiles = specs.map(
    (s): MigProfile => ({
      name: `${s.g}g.${s.gb}gb${s.me ? '+me' : ''}`,
      computeSlices: s.g,
      memorySlices: s.size,
      starts: s.starts,
      maxInstances: s.max,
      memoryMiB: sliceMiB[s.size] ?? Math.floor(s.gb * 953.67),
      mediaExtensions: s.me === true,
    }),
  );
  return { family, computeSlices, memorySlices, profiles };
}

const SEVEN = [0, 1, 2, 3, 4, 5, 6];

/** The 7-compute / 8-memory-slice layout shared by A100, H100 and H200 (smi profile IDs 19, 20, 15, 14, 9, 5, 0). */
function sevenSlice(
  family: string,
  gb: readonly [number, number, number, number],
  sliceMiB: Readonly<Record<number, number>>,
): MigGeometry {
  const [one, two, four, eight] = gb;
  return geometry(family, 7, 8, sliceMiB, [
    { g: 1, gb: one, size: 1, starts: SEVEN, max: 7 },
    { g: 1, gb: one, size: 1, starts: SEVEN, max: 1, me: true },
    { g: 1, gb: two, size: 2, starts: [0, 2, 4, 6], max: 4 },
    { g: 2, gb: two, size: 2, starts: [0, 2, 4], max: 3 },
    { g: 3, gb: four, size: 4, starts: [0, 4], max: 2 },
    { g: 4, gb: four, size: 4, starts: [0], max: 1 },
    { g: 7, gb: eight, size: 8, starts: [0], max: 1 },
  ]);
}

export const MIG_GEOMETRIES: Readonly<Record<string, MigGeometry>> = {
  'A100-40GB': sevenSlice('A100-40GB', [5, 10, 20, 40], { 1: 4864, 2: 9856, 4: 19968, 8: 40192 }),
  '80GB': sevenSlice('80GB', [10, 20, 40, 80], { 1: 9856, 2: 19968, 4: 40192, 8: 80384 }),
  'H100-94GB': sevenSlice('H100-94GB', [12, 24, 47, 94], { 1: 11008, 2: 22784, 4: 46464, 8: 93184 }),
  'H200-141GB': sevenSlice('H200-141GB', [18, 35, 71, 141], { 1: 16384, 2: 32768, 4: 65536, 8: 131072 }),
  // A30: 4 compute and 4 memory slices; the +me variants need driver R470 (1g) and R525 (2g).
  'A30-24GB': geometry('A30-24GB', 4, 4, { 1: 5836, 2: 11672, 4: 23344 }, [
    { g: 1, gb: 6, size: 1, starts: [0, 1, 2, 3], max: 4 },
    { g: 1, gb: 6, size: 1, starts: [0, 1, 2, 3], max: 1, me: true },
    { g: 2, gb: 12, size: 2, starts: [0, 2], max: 2 },
    { g: 2, gb: 12, size: 2, starts: [0, 2], max: 1, me: true },
    { g: 4, gb: 24, size: 4, starts: [0], max: 1 },
  ]),
};

export function migProfile(geometry: MigGeometry, name: string): MigProfile | undefined {
  return geometry.profiles.find((p) => p.name === name);
}

/** Profile names have the form `<g>g.<n>gb` with an optional `+me`. */
export const MIG_PROFILE_PATTERN = /^(\d+)g\.(\d+)gb(\+me)?$/;
