// VM devices: GPUs that KubeVirt's GPU device plugins (NVIDIA's sandbox device plugin under the GPU Operator's
// vm-passthrough and vm-vgpu node configs, or KubeVirt's own permittedHostDevices plugin) advertise under their own
// resource names: PCI product names for passthrough (nvidia.com/GH100_H100_SXM5_80GB), vGPU types for mediated
// devices (nvidia.com/NVIDIA_L40S-12Q). Such a node has no nvidia.com/gpu; each device resource is counted as the
// kubelet counts it, and a pool's deviceResources say what one device weighs.

import { NO_GPU_MODE, type ModeReader } from '../mode-reader.ts';
import { label } from '../node-facts.ts';

/** The GPU Operator's per-node workload label (container, vm-passthrough or vm-vgpu). */
export const WORKLOAD_CONFIG_LABEL = 'nvidia.com/gpu.workload.config';

export const readVmDeviceMode: ModeReader = (f, found) => {
  const devices = Object.entries(f.devices).filter(([, n]) => n > 0);
  // A node that serves container GPUs too is read in that mode (fit counts its devices all the same).
  if (devices.length === 0 || Object.values(f.resources).some((n) => n > 0)) return null;
  const config = label(f.labels, WORKLOAD_CONFIG_LABEL);
  if (config === 'container')
    found.warnings.push(
      `node is labelled ${WORKLOAD_CONFIG_LABEL}=container but advertises VM devices (${devices.map(([r]) => r).join(', ')}); accounting uses the devices`,
    );
  // Passthrough devices are whole GPUs; a vGPU node's physical count comes from GFD when it runs there.
  const passthrough = config === 'vm-passthrough' ? devices.reduce((sum, [, n]) => sum + n, 0) : null;
  return { ...NO_GPU_MODE, mode: 'vm-devices', physical: f.labelCount ?? passthrough ?? 0 };
};
