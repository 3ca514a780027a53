// Time-slicing and MPS: the device plugin advertises R replicas of each GPU (nvidia.com/gpu, or nvidia.com/gpu.shared
// when renamed), and the kubelet hands them out.

import { GFD, NVIDIA_GPU, NVIDIA_GPU_SHARED } from '../../well-known-names.ts';
import { NO_GPU_MODE, type ModeReader } from '../mode-reader.ts';
import { label, positiveInt } from '../node-facts.ts';

export const readReplicaMode: ModeReader = (f, found) => {
  const sharing = f.sharing;
  if (sharing !== 'time-slicing' && sharing !== 'mps') return null;
  const r = positiveInt(label(f.labels, GFD.replicas));
  if (r === null)
    found.problems.push(`${GFD.sharingStrategy}=${sharing} but ${GFD.replicas} is missing or not a positive integer`);
  const replicas = r ?? 1;
  const gpuResource = (f.resources[NVIDIA_GPU_SHARED] ?? 0) > 0 ? NVIDIA_GPU_SHARED : NVIDIA_GPU;
  const advertised = f.resources[gpuResource] ?? 0;
  const physical = f.labelCount ?? (replicas > 0 ? Math.floor(advertised / replicas) : 0);
  if (f.labelCount !== null && r !== null && advertised !== f.labelCount * r) {
    found.warnings.push(
      `allocatable ${gpuResource}=${advertised} is not ${f.labelCount} GPU(s) x ${r} replicas; accounting uses allocatable`,
    );
  }
  return { ...NO_GPU_MODE, mode: sharing, replicas, gpuResource, physical };
};
