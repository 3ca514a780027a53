// The limits a container gets where the node enforces GPU shares. Names and semantics read at the source:
// - HAMi-core (Project-HAMi/HAMi-core src/multiprocess/multiprocess_memory_limit.c, do_init_device_memory_limits and
//   do_init_device_sm_limits): CUDA_DEVICE_MEMORY_LIMIT_<i> per CUDA device ordinal, else CUDA_DEVICE_MEMORY_LIMIT for
//   all, with a k/m/g suffix; CUDA_DEVICE_SM_LIMIT[_<i>] a percentage, 0 or unset meaning no limit. libvgpu.so is loaded
//   through /etc/ld.so.preload, as HAMi's device plugin mounts it.
// - MPS (NVIDIA MPS docs, "Appendix: Environment Variables"): CUDA_MPS_PIPE_DIRECTORY names the control daemon's pipe
//   directory; CUDA_MPS_ACTIVE_THREAD_PERCENTAGE and CUDA_MPS_PINNED_DEVICE_MEM_LIMIT (`<ordinal>=<limit>,...`) in a
//   client only further lower what the daemon allows: they hold only up to the daemon's own default.
// CUDA numbers devices fastest-first unless CUDA_DEVICE_ORDER=PCI_BUS_ID; the agent sets it so that ordinal i is the
// i-th assigned GPU in index (bus) order, the order the per-device limits are written in.

import type { EnforcementKind } from './delivery.ts';
import type { AssignedShare } from './allocation-answer.ts';

export interface EnforcementPaths {
  /** Host directory holding HAMi-core's libvgpu.so and ld.so.preload. */
  readonly hamiCoreDir: string;
  /** Host directory of the MPS control daemon's pipes. */
  readonly mpsPipeDir: string;
}

export interface EnforcementEdits {
  readonly envs: Record<string, string>;
  readonly mounts: { containerPath: string; hostPath: string; readOnly: boolean }[];
}

const percent = (milli: number) => Math.max(1, Math.round(milli / 10));

export function enforcementEdits(
  kind: EnforcementKind,
  shares: readonly AssignedShare[],
  paths: EnforcementPaths,
): EnforcementEdits {
  const envs: Record<string, string> = {};
  const mounts: EnforcementEdits['mounts'] = [];
  if (kind === 'none' || shares.length === 0) return { envs, mounts };
  envs.CUDA_DEVICE_ORDER = 'PCI_BUS_ID';
  const partial = shares.some((s) => s.milli < 1000);
  if (kind === 'hami-core') {
    shares.forEach((s, i) => {
      envs[`CUDA_DEVICE_MEMORY_LIMIT_${i}`] = `${s.memoryMiB}m`;
      if (s.milli < 1000) envs[`CUDA_DEVICE_SM_LIMIT_${i}`] = String(percent(s.milli));
    });
    mounts.push(
      { containerPath: '/usr/local/vgpu/libvgpu.so', hostPath: `${paths.hamiCoreDir}/libvgpu.so`, readOnly: true },
      { containerPath: '/etc/ld.so.preload', hostPath: `${paths.hamiCoreDir}/ld.so.preload`, readOnly: true },
    );
    return { envs, mounts };
  }
  envs.CUDA_MPS_PIPE_DIRECTORY = paths.mpsPipeDir;
  envs.CUDA_MPS_PINNED_DEVICE_MEM_LIMIT = shares.map((s, i) => `${i}=${s.memoryMiB}M`).join(',');
  // One percentage for the client: the smallest share's (MPS applies it per device).
  if (partial) envs.CUDA_MPS_ACTIVE_THREAD_PERCENTAGE = String(percent(Math.min(...shares.map((s) => s.milli))));
  mounts.push({ containerPath: paths.mpsPipeDir, hostPath: paths.mpsPipeDir, readOnly: false });
  return { envs, mounts };
}
