// The agent's own CDI spec (CDI specification v0.6.0, container-device-interface SPEC.md): one device per GPU, named by
// UUID, injecting its /dev/nvidiaN, with the control devices every NVIDIA GPU needs. It carries no driver libraries:
// NVIDIA's spec (nvidia-ctk cdi generate, or the GPU Operator's) does, and is preferred where it exists.

import type { NodeGpu } from './node-gpus.ts';

/** `controlDevices`: the names under /dev of the control devices the node has (nvidiactl, nvidia-uvm, ...). */
export function cdiSpecFor(
  kind: string,
  gpus: readonly NodeGpu[],
  devRoot: string,
  controlDevices: readonly string[],
): object {
  const dev = (name: string) => ({ path: `/dev/${name}`, hostPath: `${devRoot.replace(/\/$/, '')}/dev/${name}` });
  return {
    cdiVersion: '0.6.0',
    kind,
    devices: gpus.map((g) => ({
      name: g.uuid,
      containerEdits: { deviceNodes: [dev(`nvidia${g.minor}`)], env: [`TESSERA_GPU_UUID_${g.index}=${g.uuid}`] },
    })),
    containerEdits: { deviceNodes: controlDevices.map(dev) },
  };
}
