// FGD's fragmentation measure of one node (Weng et al., USENIX ATC '23, and the artifact's pkg/utils/frag.go): for each
// typical shape that could still run on the node (GPU, CPU, memory and model), the free GPU capacity on GPUs too small for it; for shapes that no
// longer fit at all (CPU, model, GPUs), all free GPU capacity. Weighted by the shapes' frequencies.

import type { WorkloadProfile } from './workload-profile.ts';

/**
 * Fragmented GPU milli of a node. `free` holds each GPU's free milli (0..1000); `allowed[m]` says whether shape m may use
 * this node's model.
 */
export function nodeFragmentation(
  profile: WorkloadProfile,
  allowed: readonly boolean[],
  free: ArrayLike<number>,
  cpuFree: number,
  memoryFree: number,
): number {
  const n = free.length;
  let total = 0;
  let maxFree = 0;
  let whole = 0;
  for (let i = 0; i < n; i++) {
    const f = free[i]!;
    total += f;
    if (f > maxFree) maxFree = f;
    if (f >= 1000) whole++;
  }
  if (total === 0) return 0;
  const shapes = profile.shapes;
  let frag = 0;
  for (let m = 0; m < shapes.length; m++) {
    const s = shapes[m]!;
    if (s.gpus === 0 || !allowed[m] || s.cpuMilli > cpuFree || s.memoryMiB > memoryFree) {
      frag += s.weight * total;
      continue;
    }
    const need = s.milliPerGpu;
    const fits = s.gpus === 1 ? maxFree >= need : whole >= s.gpus;
    if (!fits) {
      frag += s.weight * total;
      continue;
    }
    let small = 0;
    for (let i = 0; i < n; i++) {
      const f = free[i]!;
      if (f < need) small += f;
    }
    frag += s.weight * small;
  }
  return frag;
}
