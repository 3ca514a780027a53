import t from 'tap';
import fc from 'fast-check';
import { deviceIdsOf, gpuOfDeviceId, MILLI_PER_GPU } from '../../../../core/node-agent/device-ids.ts';
import { missingGpus, orderGpus, parseGpuInformation } from '../../../../core/node-agent/node-gpus.ts';
import { cdiDeviceNames, chooseDelivery } from '../../../../core/node-agent/delivery.ts';
import { cdiSpecFor } from '../../../../core/node-agent/cdi-spec.ts';

/** An information file as nv-procfs.c prints it (open-gpu-kernel-modules, nv_procfs_read_gpu_info). */
export const information = (uuid: string, bus: string, minor: number, excluded = false) =>
  [
    'Model: \t\t NVIDIA H100 80GB HBM3',
    'IRQ:   \t\t 150',
    `GPU UUID: \t ${uuid}`,
    'Video BIOS: \t 96.00.74.00.01',
    'Bus Type: \t PCIe',
    'DMA Size: \t 52 bits',
    'DMA Mask: \t 0xfffffffffffff',
    `Bus Location: \t ${bus}`,
    `Device Minor: \t ${minor}`,
    'GPU Firmware: \t 535.104.05',
    `GPU Excluded:\t ${excluded ? 'Yes' : 'No'}`,
    '',
  ].join('\n');

const U = (n: number) => `GPU-${String(n).padStart(8, '0')}-0000-4000-8000-${String(n).padStart(12, '0')}`;

t.test('the driver information file gives UUID, minor, bus and model', async (t) => {
  t.same(parseGpuInformation('0000:3b:00.0', information(U(1), '0000:3b:00.0', 2)), {
    uuid: U(1),
    minor: 2,
    busId: '0000:3b:00.0',
    model: 'NVIDIA H100 80GB HBM3',
    excluded: false,
  });
  t.match(parseGpuInformation('0000:3b:00.0', 'Model: \t\t X\n'), /no valid "GPU UUID:" line/);
  t.match(parseGpuInformation('x', `GPU UUID: \t ${U(1)}\nDevice Minor: \t two\n`), /no valid "Device Minor:" line/);
});

t.test('GPUs are numbered in PCI bus order, excluded ones left out', async (t) => {
  const found = [
    parseGpuInformation('0000:b1:00.0', information(U(3), '0000:b1:00.0', 0)),
    parseGpuInformation('0000:1b:00.0', information(U(1), '0000:1b:00.0', 5)),
    parseGpuInformation('0000:3b:00.0', information(U(2), '0000:3b:00.0', 1, true)),
    parseGpuInformation('0000:9a:00.0', information(U(4), '0000:9a:00.0', 3)),
  ].filter((g) => typeof g !== 'string');
  t.same(
    orderGpus(found).map((g) => [g.index, g.uuid, g.minor]),
    [
      [0, U(1), 5],
      [1, U(4), 3],
      [2, U(3), 0],
    ],
  );
  const known = orderGpus(found);
  t.same(
    [
      ...missingGpus(
        known,
        found.filter((g) => g.uuid !== U(4)),
      ),
    ],
    [U(4)],
    'a GPU that disappears is missing',
  );
});

t.test('1000 device IDs per GPU, each naming its GPU, within the kubelet’s 63 characters', async (t) => {
  fc.assert(
    fc.property(fc.uuid(), (raw) => {
      const uuid = `GPU-${raw}`;
      const ids = deviceIdsOf(uuid);
      return (
        ids.length === MILLI_PER_GPU &&
        new Set(ids).size === MILLI_PER_GPU &&
        ids.every((id) => id.length <= 63 && gpuOfDeviceId(id) === uuid)
      );
    }),
  );
  t.equal(gpuOfDeviceId('something-else'), null);
  t.equal(gpuOfDeviceId(`${U(1)}::x`), null);
});

t.test('delivery: flag, then pool, then what the node shows', async (t) => {
  const cdi = {
    cdiDevices: new Set([`nvidia.com/gpu=${U(1)}`, `nvidia.com/gpu=${U(2)}`]),
    toolkitAcceptsVolumeMounts: true,
  };
  const none = { cdiDevices: new Set<string>(), toolkitAcceptsVolumeMounts: false };
  const uuids = [U(1), U(2)];
  t.equal(chooseDelivery('envvar', 'cdi-cri', cdi, 'nvidia.com/gpu', uuids).mode, 'envvar', 'the flag wins');
  t.equal(chooseDelivery('auto', 'volume-mounts', cdi, 'nvidia.com/gpu', uuids).mode, 'volume-mounts', 'then the pool');
  t.equal(chooseDelivery('auto', 'auto', cdi, 'nvidia.com/gpu', uuids).mode, 'cdi-cri', 'CDI specs by UUID');
  t.equal(chooseDelivery('auto', null, cdi, 'tessera.io/gpu', uuids).mode, 'volume-mounts', 'no spec of that kind');
  t.equal(
    chooseDelivery('auto', null, { ...cdi, cdiDevices: new Set([`nvidia.com/gpu=${U(1)}`]) }, 'nvidia.com/gpu', uuids)
      .mode,
    'volume-mounts',
    'a spec must name every GPU',
  );
  t.equal(chooseDelivery('auto', null, none, 'nvidia.com/gpu', uuids).mode, 'envvar');
});

t.test("the agent's own CDI spec names each GPU by UUID and lists only the node's control devices", async (t) => {
  const gpus = orderGpus(
    [parseGpuInformation('0000:1b:00.0', information(U(1), '0000:1b:00.0', 7))].filter((g) => typeof g !== 'string'),
  );
  const spec = cdiSpecFor('tessera.io/gpu', gpus, '/', ['nvidiactl']);
  t.same(cdiDeviceNames(spec), [`tessera.io/gpu=${U(1)}`]);
  t.match(spec, {
    cdiVersion: '0.6.0',
    devices: [{ containerEdits: { deviceNodes: [{ path: '/dev/nvidia7', hostPath: '/dev/nvidia7' }] } }],
    containerEdits: { deviceNodes: [{ path: '/dev/nvidiactl' }] },
  });
  t.same(cdiDeviceNames({ kind: 'x' }), [], 'a malformed spec names nothing');
});
