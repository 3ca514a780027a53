// Which GPUs a container saw, from what gpu-reporter/reporter.c printed to its log (never from the pod's annotations).
// Each route a GPU can take into a container is read on its own, so that a test can hold each delivery mode to its
// route:
//   cdi       the variables the CDI spec's devices set (TESSERA_FAKE_GPU_<index>=<UUID>, fake-gpus.ts)
//   devices   the device nodes the CDI devices inject (/dev/nvidia-fake-<index>, major 195, minor = the GPU's minor)
//   envvar    NVIDIA_VISIBLE_DEVICES, entries by UUID or by index (the `envvar` list, or the old downward-API path)
//   mounts    mount points /var/run/nvidia-container-devices/<UUID or index> (the `volume-mounts` list)

export interface GpuRef {
  readonly index: number;
  readonly minor: number;
  readonly uuid: string;
}

export interface ContainerReport {
  readonly env: Readonly<Record<string, string>>;
  readonly devices: readonly { path: string; kind: string; major: number; minor: number }[];
  readonly mounts: readonly string[];
  /** reporter.c printed its last line: the report is whole. */
  readonly complete: boolean;
}

export interface SeenGpus {
  readonly cdi: readonly string[];
  readonly devices: readonly string[];
  readonly envvar: readonly string[];
  readonly mounts: readonly string[];
  /** Every UUID seen by any route. */
  readonly all: readonly string[];
  /** What was seen but names no GPU of the node (a wrong UUID, an index out of range, an unknown device node). */
  readonly unknown: readonly string[];
}

/** The CRI log format the kubelet writes (`<time> <stream> <P|F> <text>`), or a plain line. */
function logText(line: string): string {
  const m = /^\S+ (?:stdout|stderr) [PF] (.*)$/.exec(line);
  return m ? m[1]! : line;
}

export function parseContainerReport(log: string): ContainerReport {
  const env: Record<string, string> = {};
  const devices: { path: string; kind: string; major: number; minor: number }[] = [];
  const mounts: string[] = [];
  let complete = false;
  for (const raw of log.split('\n')) {
    const line = logText(raw);
    let m: RegExpExecArray | null;
    if ((m = /^env ([A-Z0-9_]+)=(.*)$/.exec(line))) env[m[1]!] = m[2]!;
    else if ((m = /^dev (\S+) ([cb]) (\d+):(\d+)$/.exec(line)))
      devices.push({ path: m[1]!, kind: m[2]!, major: Number(m[3]), minor: Number(m[4]) });
    else if ((m = /^mount (\S+)$/.exec(line))) mounts.push(m[1]!);
    else if (line === 'end') complete = true;
  }
  return { env, devices, mounts, complete };
}

const NVIDIA_MAJOR = 195;
const DEVICE_LIST_ROOTS = ['/var/run/nvidia-container-devices/', '/run/nvidia-container-devices/'];

export function seenGpus(report: ContainerReport, gpus: readonly GpuRef[]): SeenGpus {
  const unknown: string[] = [];
  const byName = (name: string): string | undefined => {
    const g = /^\d+$/.test(name) ? gpus.find((x) => x.index === Number(name)) : gpus.find((x) => x.uuid === name);
    if (!g) unknown.push(name);
    return g?.uuid;
  };
  const defined = (xs: (string | undefined)[]) => [...new Set(xs.filter((x): x is string => x !== undefined))].sort();
  const cdi = defined(
    Object.entries(report.env)
      .filter(([k]) => k.startsWith('TESSERA_FAKE_GPU_'))
      .map(([, v]) => byName(v)),
  );
  const devices = defined(
    report.devices
      .filter((d) => d.path.startsWith('/dev/nvidia-fake-'))
      .map((d) => {
        const g = d.kind === 'c' && d.major === NVIDIA_MAJOR ? gpus.find((x) => x.minor === d.minor) : undefined;
        if (!g) unknown.push(`${d.path} ${d.kind} ${d.major}:${d.minor}`);
        return g?.uuid;
      }),
  );
  // void/none/empty: no GPU; the volume-mounts root itself says "read the list from the mounts".
  const visible = report.env.NVIDIA_VISIBLE_DEVICES ?? '';
  const envvar = ['', 'void', 'none', ...DEVICE_LIST_ROOTS.map((r) => r.slice(0, -1))].includes(visible)
    ? []
    : defined(visible.split(',').map((v) => byName(v.trim())));
  const mounts = defined(
    report.mounts.map((p) => {
      const root = DEVICE_LIST_ROOTS.find((r) => p.startsWith(r));
      return root ? byName(p.slice(root.length)) : undefined;
    }),
  );
  return { cdi, devices, envvar, mounts, all: defined([...cdi, ...devices, ...envvar, ...mounts]), unknown };
}
