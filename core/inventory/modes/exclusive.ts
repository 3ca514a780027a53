// Whole GPUs from the device plugin (no sharing, no MIG): nvidia.com/gpu counts physical GPUs.

import { GFD, NVIDIA_GPU } from '../../well-known-names.ts';
import { NO_GPU_MODE, type ModeReader } from '../mode-reader.ts';

export const readExclusiveMode: ModeReader = (f, found) => {
  if ((f.resources[NVIDIA_GPU] ?? 0) === 0 && f.labelCount === null) return null;
  if (f.sharing !== 'none')
    found.warnings.push(`unknown ${GFD.sharingStrategy}=${f.sharing}; treating GPUs as exclusive`);
  const physical = f.resources[NVIDIA_GPU] ?? f.labelCount ?? 0;
  if (f.resources[NVIDIA_GPU] === undefined)
    found.problems.push(
      `node has ${GFD.count}=${f.labelCount} but no allocatable ${NVIDIA_GPU}; the device plugin is not serving it`,
    );
  return { ...NO_GPU_MODE, mode: 'exclusive', gpuResource: NVIDIA_GPU, physical };
};
