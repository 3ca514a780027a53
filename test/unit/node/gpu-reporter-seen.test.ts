import t from 'tap';
import { parseContainerReport, seenGpus } from '../../node/gpu-reporter/seen.ts';

const gpus = [
  { index: 0, minor: 0, uuid: 'GPU-aaaaaaaa-0000-4000-8000-000000000000' },
  { index: 1, minor: 1, uuid: 'GPU-bbbbbbbb-0000-4000-8000-000000000001' },
];
const cri = (lines: string[]) => lines.map((l) => `2026-12-07T15:00:00.000000000Z stdout F ${l}`).join('\n');

t.test('CDI delivery: the spec’s variable and device node, read from the kubelet’s CRI log lines', async (t) => {
  const r = parseContainerReport(
    cri([
      `env TESSERA_FAKE_GPU_1=${gpus[1]!.uuid}`,
      'dev /dev/nvidia-fake-1 c 195:1',
      'dev /dev/nvidiactl c 195:255',
      'end',
    ]),
  );
  t.ok(r.complete);
  const seen = seenGpus(r, gpus);
  t.same(seen.cdi, [gpus[1]!.uuid]);
  t.same(seen.devices, [gpus[1]!.uuid]);
  t.same(seen.envvar, []);
  t.same(seen.all, [gpus[1]!.uuid]);
  t.same(seen.unknown, []);
});

t.test('envvar: NVIDIA_VISIBLE_DEVICES by UUID or by index; void and the volume-mounts root are no GPU', async (t) => {
  const by = (v: string) => seenGpus(parseContainerReport(`env NVIDIA_VISIBLE_DEVICES=${v}\nend`), gpus);
  t.same(by(`${gpus[0]!.uuid},${gpus[1]!.uuid}`).envvar, [gpus[0]!.uuid, gpus[1]!.uuid]);
  t.same(by('1').envvar, [gpus[1]!.uuid]);
  t.same(by('void').all, []);
  t.same(by('/var/run/nvidia-container-devices').all, []);
  t.same(by('7').unknown, ['7'], 'an index the node does not have is reported, not dropped');
  t.same(by('all').unknown, ['all']);
});

t.test('volume-mounts: one mount point per GPU under /var/run/nvidia-container-devices', async (t) => {
  const seen = seenGpus(
    parseContainerReport(
      [
        'env NVIDIA_VISIBLE_DEVICES=/var/run/nvidia-container-devices',
        `mount /var/run/nvidia-container-devices/${gpus[0]!.uuid}`,
        'mount /var/run/nvidia-container-devices/GPU-not-on-this-node',
        'end',
      ].join('\n'),
    ),
    gpus,
  );
  t.same(seen.mounts, [gpus[0]!.uuid]);
  t.same(seen.unknown, ['GPU-not-on-this-node']);
});

t.test('a device node of another major, or a report cut short, is not taken for a GPU', async (t) => {
  const r = parseContainerReport('dev /dev/nvidia-fake-0 c 1:3');
  t.notOk(r.complete);
  t.same(seenGpus(r, gpus).devices, []);
  t.same(seenGpus(r, gpus).unknown, ['/dev/nvidia-fake-0 c 1:3']);
});
