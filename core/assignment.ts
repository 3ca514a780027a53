// The `tessera.io/assignment` pod annotation: what the extender committed at bind. It is the durable record from
// which the ledger is rebuilt, so parsing is strict and reports exactly what is wrong.

export interface GpuShare {
  readonly index: number;
  readonly milli: number;
  readonly memoryMiB: number;
}

export interface Assignment {
  readonly node: string;
  readonly gpus: readonly GpuShare[];
}

export function formatAssignment(assignment: Assignment): string {
  return JSON.stringify({
    node: assignment.node,
    gpus: assignment.gpus.map((g) => ({ index: g.index, milli: g.milli, memoryMiB: g.memoryMiB })),
  });
}

/** The `tessera.io/visible-devices` value: GPU indices in ascending order, comma-separated (NVIDIA_VISIBLE_DEVICES syntax). */
export function visibleDevices(assignment: Assignment): string {
  return [...assignment.gpus]
    .map((g) => g.index)
    .sort((a, b) => a - b)
    .join(',');
}

function isCount(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

/** Parses an assignment annotation; returns an error message instead of throwing. */
export function parseAssignment(text: string): Assignment | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return 'tessera.io/assignment is not JSON';
  }
  const obj = raw as { node?: unknown; gpus?: unknown } | null;
  if (
    typeof obj !== 'object' ||
    obj === null ||
    typeof obj.node !== 'string' ||
    obj.node === '' ||
    !Array.isArray(obj.gpus)
  ) {
    return 'tessera.io/assignment must be {"node": "<name>", "gpus": [{"index": i, "milli": m, "memoryMiB": n}]}';
  }
  const gpus: GpuShare[] = [];
  const seen = new Set<number>();
  for (const g of obj.gpus as unknown[]) {
    const share = g as Partial<GpuShare> | null;
    if (
      !share ||
      !isCount(share.index, 1023) ||
      !isCount(share.milli, 1000) ||
      share.milli === 0 ||
      !isCount(share.memoryMiB, 1 << 24)
    ) {
      return `tessera.io/assignment has an invalid GPU entry ${JSON.stringify(g)}`;
    }
    if (seen.has(share.index)) return `tessera.io/assignment lists GPU ${share.index} twice`;
    seen.add(share.index);
    gpus.push({ index: share.index, milli: share.milli, memoryMiB: share.memoryMiB });
  }
  return { node: obj.node, gpus };
}
