// The optional tessera.io/gpu-topology node annotation: per-GPU NUMA node and NVLink island. Bad entries are warnings
// (the GPUs are then assumed fully connected), never problems.

import { GPU_TOPOLOGY } from '../well-known-names.ts';

export interface TopologyEntry {
  index: number;
  numa?: number;
  nvlink?: string;
}

export function readTopology(raw: string | undefined, count: number, warnings: string[]): Map<number, TopologyEntry> {
  const entries = new Map<number, TopologyEntry>();
  if (raw === undefined) return entries;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    warnings.push(
      `annotation ${GPU_TOPOLOGY} is not JSON; expected {"gpus":[{"index":0,"numa":0,"nvlink":"a"}]} (topology ignored)`,
    );
    return entries;
  }
  const gpus = (parsed as { gpus?: unknown })?.gpus;
  if (!Array.isArray(gpus)) {
    warnings.push(`annotation ${GPU_TOPOLOGY} has no "gpus" array (topology ignored)`);
    return entries;
  }
  for (const item of gpus as unknown[]) {
    const e = item as Partial<TopologyEntry> | null;
    const index = e?.index;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= count) {
      warnings.push(
        `annotation ${GPU_TOPOLOGY} names GPU index ${JSON.stringify(index)}, but the node has GPUs 0..${count - 1} (entry ignored)`,
      );
      continue;
    }
    const entry: TopologyEntry = { index };
    if (typeof e?.numa === 'number' && Number.isInteger(e.numa)) entry.numa = e.numa;
    if (typeof e?.nvlink === 'string' && e.nvlink !== '') entry.nvlink = e.nvlink;
    entries.set(index, entry);
  }
  return entries;
}
