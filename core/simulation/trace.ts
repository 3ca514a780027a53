// The Alibaba openb trace format (cluster-trace-gpu-v2023): node and pod lists as CSV text. Parsing is pure; reading
// the files is the CLI's job. Rows are validated so that a damaged file fails loudly with its line number.

import { lookupModel } from '../catalog/gpu-models.ts';

/** The GPU models of the openb trace (its own names: G2 and G3 are Alibaba's anonymised models). */
export const OPENB_MODELS: readonly string[] = ['A10', 'G2', 'G3', 'P100', 'T4', 'V100M16', 'V100M32'];

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
  return lines.map(({ n, cells }) => {
    const node = {
      name: (cells[header.get('sn')!] ?? '').trim(),
      cpuMilli: int(cells, header, 'cpu_milli', n, what),
      memoryMiB: int(cells, header, 'memory_mib', n, what),
      gpus: int(cells, header, 'gpu', n, what),
      model: (cells[header.get('model')!] ?? '').trim(),
    };
    // A GPU node without a model would silently match no model-restricted pod and skew every gpu_spec result.
    if (node.gpus > 0 && node.model === '')
      throw new TraceError(
        `${what} line ${n}: node ${node.name || '(unnamed)'} has ${node.gpus} GPU(s) but no model; write its model (${OPENB_MODELS.join(', ')}, or a GPU product name such as A100-SXM4-80GB)`,
      );
    return node;
  });
}

/** Whether a model name is one of the trace's or one Tessera's catalog knows. */
export function knownTraceModel(model: string): boolean {
  return OPENB_MODELS.includes(model) || lookupModel(model) !== null;
}

/**
 * What is suspicious in a trace though it parses: GPU models nobody knows (a typo matches no pod's gpu_spec), and
 * pods that name in gpu_spec only models no node has (they can never be placed).
 */
export function traceWarnings(nodes: readonly TraceNode[], pods: readonly TracePod[]): string[] {
  const warnings: string[] = [];
  const byModel = new Map<string, string[]>();
  for (const n of nodes) if (n.gpus > 0) byModel.set(n.model, [...(byModel.get(n.model) ?? []), n.name]);
  for (const [model, names] of byModel)
    if (!knownTraceModel(model))
      warnings.push(
        `node list: model "${model}" (${names.length} node(s): ${names.slice(0, 3).join(', ')}${names.length > 3 ? ', ...' : ''}) is neither an openb trace model (${OPENB_MODELS.join(', ')}) nor a GPU model Tessera knows; it is used as written, and pods match it only by that exact name`,
      );
  const stranded = new Map<string, number>();
  for (const p of pods)
    if (p.gpus > 0 && p.models !== null && !p.models.some((m) => byModel.has(m))) {
      const key = p.models.join('|');
      stranded.set(key, (stranded.get(key) ?? 0) + 1);
    }
  for (const [models, count] of stranded)
    warnings.push(
      `pod list: ${count} pod(s) accept only ${models} (gpu_spec), which no node has; they can never be placed`,
    );
  return warnings;
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

/**
 * The trace replicated `factor` times: every node and every pod `factor` times, the copies named `<name>-r<k>`. The
 * FGD protocol then tunes and shuffles the scaled trace as any other (a cluster `factor` times larger, same workload).
 */
export function replicateTrace(
  nodes: readonly TraceNode[],
  pods: readonly TracePod[],
  factor: number,
): { nodes: TraceNode[]; pods: TracePod[] } {
  if (!Number.isInteger(factor) || factor < 1) throw new TraceError(`scale ${factor}: expected a whole number >= 1`);
  if (factor === 1) return { nodes: [...nodes], pods: [...pods] };
  const copies = Array.from({ length: factor }, (_, k) => k);
  return {
    nodes: copies.flatMap((k) => nodes.map((n) => ({ ...n, name: `${n.name}-r${k}` }))),
    pods: copies.flatMap((k) => pods.map((p) => ({ ...p, name: `${p.name}-r${k}` }))),
  };
}
