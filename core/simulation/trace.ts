// The Alibaba openb trace format (cluster-trace-gpu-v2023): node and pod lists as CSV text. Parsing is pure; reading
// the files is the CLI's job. Rows are validated so that a damaged file fails loudly with its line number.

export interface TraceNode {
  readonly name: string;
  readonly cpuMilli: number;
  readonly memoryMiB: number;
  readonly gpus: number;
  readonly model: string;
}

export interface TracePod {
  readonly name: string;
  readonly cpuMilli: number;
  readonly memoryMiB: number;
  readonly gpus: number;
  /** Per GPU, 0..1000; clipped to 1000 as the FGD artifact's converter does. */
  readonly milliPerGpu: number;
  /** Allowed models from `gpu_spec`, or null. */
  readonly models: readonly string[] | null;
}

export class TraceError extends Error {
  override name = 'TraceError';
}

function rows(
  text: string,
  required: readonly string[],
  what: string,
): { header: Map<string, number>; lines: { n: number; cells: string[] }[] } {
  const lines = text.split(/\r?\n/);
  const head = (lines[0] ?? '').split(',').map((h) => h.trim());
  const header = new Map(head.map((h, i) => [h, i]));
  for (const column of required) {
    if (!header.has(column)) throw new TraceError(`${what}: missing column "${column}" (header is: ${head.join(',')})`);
  }
  const out: { n: number; cells: string[] }[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    out.push({ n: i + 1, cells: line.split(',') });
  }
  return { header, lines: out };
}

function int(cells: string[], header: Map<string, number>, column: string, line: number, what: string): number {
  const raw = (cells[header.get(column)!] ?? '').trim();
  if (!/^\d+$/.test(raw))
    throw new TraceError(`${what} line ${line}: ${column}="${raw}" is not a non-negative integer`);
  return Number(raw);
}

export function parseTraceNodes(text: string): TraceNode[] {
  const what = 'node list';
  const { header, lines } = rows(text, ['sn', 'cpu_milli', 'memory_mib', 'gpu', 'model'], what);
  return lines.map(({ n, cells }) => ({
    name: (cells[header.get('sn')!] ?? '').trim(),
    cpuMilli: int(cells, header, 'cpu_milli', n, what),
    memoryMiB: int(cells, header, 'memory_mib', n, what),
    gpus: int(cells, header, 'gpu', n, what),
    model: (cells[header.get('model')!] ?? '').trim(),
  }));
}

export function parseTracePods(text: string): TracePod[] {
  const what = 'pod list';
  const { header, lines } = rows(text, ['name', 'cpu_milli', 'memory_mib', 'num_gpu', 'gpu_milli'], what);
  const spec = header.get('gpu_spec');
  return lines.map(({ n, cells }) => {
    const gpus = int(cells, header, 'num_gpu', n, what);
    const milli = Math.min(1000, int(cells, header, 'gpu_milli', n, what));
    if (gpus > 0 && milli === 0) throw new TraceError(`${what} line ${n}: num_gpu=${gpus} but gpu_milli=0`);
    const specText = spec === undefined ? '' : (cells[spec] ?? '').trim();
    return {
      name: (cells[header.get('name')!] ?? '').trim(),
      cpuMilli: int(cells, header, 'cpu_milli', n, what),
      memoryMiB: int(cells, header, 'memory_mib', n, what),
      gpus,
      milliPerGpu: gpus === 0 ? 0 : milli,
      models:
        specText === ''
          ? null
          : specText
              .split('|')
              .map((s) => s.trim())
              .filter((s) => s !== ''),
    };
  });
}
