// Fake GPUs for the real node: a driver root the node agent reads (`--driver-root`), and a CDI spec containerd 2
// resolves, so that a fraction pod's container shows exactly which GPUs reached it, with no GPU on this machine.
//
// - <dir>/driver-root/proc/driver/nvidia/gpus/<pci>/information: the file NVIDIA's kernel module writes, in its format
//   (NVIDIA/open-gpu-kernel-modules kernel-open/nvidia/nv-procfs.c, nv_procfs_read_gpu_info: "Model: \t\t %s",
//   "GPU UUID: \t %s", "Bus Location: \t %04x:%02x:%02x.%x", "Device Minor: \t %u", "GPU Excluded:\t %s", ...).
//   Indices follow PCI order, minors equal indices.
// - <dir>/dev/nvidia-fake-<index>: character devices 195:<minor> (the nvidia major), never opened; CDI injects each
//   into the container at /dev/nvidia-fake-<index>.
// - /var/run/cdi/tessera-fake-gpus.yaml (a directory containerd 2's CRI reads by default, `cdi_spec_dirs`), removed at
//   teardown: kind nvidia.com/gpu, one device per GPU by UUID and one by index (as `nvidia-ctk cdi generate` names
//   them), each injecting its device node and TESSERA_FAKE_GPU_<index>=<UUID>. Format: tags.cncf.io/container-device-
//   interface specs-go@v1.1.1 config.go (Spec{cdiVersion, kind, devices[]{name, containerEdits{env, deviceNodes}}});
//   deviceNodes.hostPath needs cdiVersion 0.5.0 (specs-go version.go requiresV050).

import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { HostChanges } from './host.ts';
import { sh } from './host.ts';

export const CDI_KIND = 'nvidia.com/gpu';
export const CDI_SPEC_DIR = '/var/run/cdi';
const NVIDIA_MAJOR = 195;

export interface FakeGpu {
  readonly index: number;
  readonly minor: number;
  readonly uuid: string;
  /** PCI bus location, as the driver writes it (0000:18:00.0). */
  readonly pci: string;
  /** The device node's path inside a container. */
  readonly devicePath: string;
  /** The variable the CDI device sets: TESSERA_FAKE_GPU_<index>=<uuid>. */
  readonly envName: string;
}

export interface FakeGpus {
  readonly gpus: readonly FakeGpu[];
  /** The folder to give the agent as --driver-root. */
  readonly driverRoot: string;
  readonly cdiSpecFile: string;
  byUuid(uuid: string): FakeGpu | undefined;
  byIndex(index: number): FakeGpu | undefined;
}

function information(g: FakeGpu): string {
  return [
    'Model: \t\t NVIDIA H100 80GB HBM3',
    `IRQ:   \t\t ${150 + g.index}`,
    `GPU UUID: \t ${g.uuid}`,
    'Video BIOS: \t 96.00.99.00.01',
    'Bus Type: \t PCIe',
    'DMA Size: \t 52 bits',
    'DMA Mask: \t 0xfffffffffffff',
    `Bus Location: \t ${g.pci}`,
    `Device Minor: \t ${g.minor}`,
    'GPU Firmware: \t 580.95.05',
    'GPU Excluded:\t No',
    '',
  ].join('\n');
}

export function createFakeGpus(dir: string, changes: HostChanges, count = 2): FakeGpus {
  const gpus: FakeGpu[] = Array.from({ length: count }, (_, index) => ({
    index,
    minor: index,
    uuid: `GPU-${randomUUID()}`,
    pci: `0000:${(0x18 + 0x10 * index).toString(16).padStart(2, '0')}:00.0`,
    devicePath: `/dev/nvidia-fake-${index}`,
    envName: `TESSERA_FAKE_GPU_${index}`,
  }));
  const driverRoot = join(dir, 'driver-root');
  const devDir = join(dir, 'dev');
  mkdirSync(devDir, { recursive: true });
  for (const g of gpus) {
    const folder = join(driverRoot, 'proc', 'driver', 'nvidia', 'gpus', g.pci);
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'information'), information(g));
    sh('mknod', ['-m', '0666', join(devDir, `nvidia-fake-${g.index}`), 'c', String(NVIDIA_MAJOR), String(g.minor)]);
  }
  const edits = (g: FakeGpu) => ({
    env: [`${g.envName}=${g.uuid}`],
    deviceNodes: [{ path: g.devicePath, hostPath: join(devDir, `nvidia-fake-${g.index}`) }],
  });
  const spec = {
    cdiVersion: '0.5.0',
    kind: CDI_KIND,
    devices: [
      ...gpus.map((g) => ({ name: g.uuid, containerEdits: edits(g) })),
      ...gpus.map((g) => ({ name: String(g.index), containerEdits: edits(g) })),
    ],
  };
  mkdirSync(CDI_SPEC_DIR, { recursive: true });
  const cdiSpecFile = join(CDI_SPEC_DIR, 'tessera-fake-gpus.yaml');
  writeFileSync(cdiSpecFile, stringify(spec));
  changes.note({ cdiSpecFile });
  changes.add(`remove ${cdiSpecFile}`, () => rmSync(cdiSpecFile, { force: true }));
  return {
    gpus,
    driverRoot,
    cdiSpecFile,
    byUuid: (uuid) => gpus.find((g) => g.uuid === uuid),
    byIndex: (index) => gpus.find((g) => g.index === index),
  };
}
