// Reads the node's GPUs from the driver's procfs tree, under --driver-root (a test points it at a fake tree; the
// DaemonSet mounts the host's /proc/driver/nvidia at /host/proc/driver/nvidia and passes --driver-root /host).

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseGpuInformation, type GpuInformation } from '../core/node-agent/node-gpus.ts';

export interface GpuTreeReading {
  readonly found: readonly GpuInformation[];
  /** Files that could not be read or parsed, each with why. */
  readonly problems: readonly string[];
}

export function gpuDirectory(driverRoot: string): string {
  return join(driverRoot, 'proc/driver/nvidia/gpus');
}

export function readGpuTree(driverRoot: string): GpuTreeReading {
  const dir = gpuDirectory(driverRoot);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    return { found: [], problems: [`cannot read ${dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`] };
  }
  const found: GpuInformation[] = [];
  const problems: string[] = [];
  for (const name of names.sort()) {
    let text: string;
    try {
      text = readFileSync(join(dir, name, 'information'), 'utf8');
    } catch (e) {
      problems.push(`cannot read ${join(dir, name, 'information')}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
      continue;
    }
    const parsed = parseGpuInformation(name, text);
    if (typeof parsed === 'string') problems.push(parsed);
    else found.push(parsed);
  }
  return { found, problems };
}
