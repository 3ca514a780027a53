// MIG under the mixed strategy: one nvidia.com/mig-<profile> resource per profile; the layout on each GPU is rebuilt
// from the counts, since the device plugin does not say which GPU holds which instance.

import { reconstructLayout } from '../../catalog/mig-layout.ts';
import { GFD, NVIDIA_GPU, NVIDIA_MIG_PREFIX } from '../../well-known-names.ts';
import type { ModeReader } from '../mode-reader.ts';

export const readMigMixedMode: ModeReader = (f, found) => {
  if (f.migStrategy !== 'mixed' || (Object.keys(f.migCounts).length === 0 && !f.hasMigResources)) return null;
  const geometry = f.catalog?.mig ?? null;
  if (geometry === null)
    found.problems.push(
      `GPU model ${f.product ?? '(no ' + GFD.product + ' label)'} has no MIG geometry in Tessera's catalog`,
    );
  const layoutCounts: Record<string, number> = {};
  for (const [key, value] of Object.entries(f.resources)) {
    if (!key.startsWith(NVIDIA_MIG_PREFIX)) continue;
    const profile = key.slice(NVIDIA_MIG_PREFIX.length);
    if (f.migCounts[profile] !== undefined && f.migCounts[profile] !== value) {
      found.warnings.push(
        `label nvidia.com/mig-${profile}.count=${f.migCounts[profile]} disagrees with allocatable ${key}=${value}; accounting uses allocatable`,
      );
    }
    if (value > 0) layoutCounts[profile] = value;
  }
  let physical = f.labelCount ?? 0;
  let layout: ReturnType<typeof reconstructLayout>['gpus'] = [];
  if (geometry !== null) {
    if (physical === 0) {
      // GFD gives no physical count under mixed on some versions: assume the fewest GPUs that can hold the instances.
      const slices = Object.entries(layoutCounts).reduce(
        (sum, [p, n]) => sum + n * (geometry.profiles.find((x) => x.name === p)?.memorySlices ?? 0),
        0,
      );
      physical = Math.max(1, Math.ceil(slices / geometry.memorySlices));
    }
    const rebuilt = reconstructLayout(geometry, physical, layoutCounts);
    if (rebuilt.problem !== null) found.problems.push(rebuilt.problem);
    layout = rebuilt.gpus;
  }
  const gpuResource = (f.resources[NVIDIA_GPU] ?? 0) > 0 ? NVIDIA_GPU : null;
  return { mode: 'mig', physical, replicas: 1, gpuResource, migGeometry: geometry, layout: layout.map((g) => [...g]) };
};
