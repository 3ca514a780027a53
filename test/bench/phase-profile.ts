// A CPU profile of every process of a benchmark phase (BENCH_PROFILE=<dir>): `perf record` samples the whole machine
// with call stacks while the phase runs; afterwards `perf script` gives the samples with their process, and the report
// keeps the processes the benchmark names. perf reads the Go binaries' symbols (built with them) and the extender's
// JIT code through the map file `node --perf-basic-prof` writes: one tool for kube-apiserver, kube-scheduler, etcd,
// KWOK and the extender alike, without turning on each one's own profiling endpoint. Two views per process, as shares
// of that process's samples: the functions where the samples fall (self), and the functions on the stack when they
// were taken (inclusive: e.g. kube-scheduler's extender client, or the API server's watch encoding, with all they call).

import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface PhaseProfile {
  /** Stops sampling; the samples stay in `<name>.data` until `report`. */
  stop(): Promise<void>;
  /** Writes `<name>.txt`: the top entries of each named process (pid), and returns its text. */
  report(processes: ReadonlyMap<string, number>, top?: number): Promise<string>;
}

/** Starts sampling the machine into `<dir>/<name>.data` (perf must be installed and allowed). */
export function startPhaseProfile(dir: string, name: string): PhaseProfile {
  const data = join(dir, `${name}.data`);
  const perf: ChildProcess = spawn('perf', ['record', '-a', '-g', '-F', '199', '-o', data, '--quiet'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise((r) => perf.once('exit', r));
  return {
    async stop() {
      perf.kill('SIGINT');
      await exited;
    },
    report: (processes, top) => reportProfile(dir, name, processes, top),
  };
}

/** The top entries of each named process (pid) in `<dir>/<name>.data`, also written to `<dir>/<name>.txt`. */
export async function reportProfile(
  dir: string,
  name: string,
  processes: ReadonlyMap<string, number>,
  top = 20,
): Promise<string> {
  const data = join(dir, `${name}.data`);
  const wanted = new Map([...processes].map(([process, pid]) => [pid, process]));
  const stacks = await samplesOf(data, new Set(wanted.keys()));
  const sections: string[] = [];
  for (const [pid, process] of [...wanted].sort(([, a], [, b]) => (a < b ? -1 : 1))) {
    const samples = stacks.get(pid) ?? [];
    sections.push(`== ${process}: ${samples.length} samples ==`);
    if (samples.length === 0) continue;
    const self = new Map<string, number>();
    const inclusive = new Map<string, number>();
    for (const frames of samples) {
      const leaf = frames[0] ?? '[unknown]';
      self.set(leaf, (self.get(leaf) ?? 0) + 1);
      for (const f of new Set(frames)) inclusive.set(f, (inclusive.get(f) ?? 0) + 1);
    }
    const rows = (counts: Map<string, number>) =>
      [...counts]
        .sort(([, a], [, b]) => b - a)
        .slice(0, top)
        .map(([f, n]) => `  ${((100 * n) / samples.length).toFixed(1).padStart(5)} %  ${f}`);
    const telling = new Map([...inclusive].filter(([f]) => !PLUMBING.test(f)));
    const marks = Object.entries(LANDMARKS[process] ?? {}).map(([what, re]) => {
      const n = samples.filter((frames) => frames.some((f) => re.test(f))).length;
      return `  ${((100 * n) / samples.length).toFixed(1).padStart(5)} %  ${what}`;
    });
    if (marks.length > 0) sections.push('where it goes (share of samples with it on the stack):', ...marks);
    sections.push('self:', ...rows(self), 'inclusive (plumbing left out):', ...rows(telling));
  }
  const text = sections.join('\n');
  writeFileSync(join(dir, `${name}.txt`), `${text}\n`);
  return text;
}

/** The work the issue asks about, per process (benchmark names), found by the functions that do it. */
const LANDMARKS: Record<string, Record<string, RegExp>> = {
  'kube-scheduler': {
    'its own filter plugins over the candidate nodes': /findNodesThatPassFilters\.func1$/,
    'scoring (score plugins and the extender prioritize call)': /scheduler\.prioritizeNodes$/,
    'extender client: every call (HTTPExtender.send)': /HTTPExtender\)\.send$/,
    'extender client: filter': /HTTPExtender\)\.Filter$/,
    'extender client: prioritize': /HTTPExtender\)\.Prioritize$/,
    'extender client: bind': /HTTPExtender\)\.Bind$/,
    'extender client: decoding the answers (JSON)': /^encoding\/json\.\(\*Decoder\)\.Decode$/,
    'extender client: encoding the pod and names (JSON)': /^encoding\/json\.Marshal$/,
    'binding by itself (DefaultBinder)': /DefaultBinder\)\.Bind$/,
    'garbage collection (mark)': /gcBgMarkWorker$/,
  },
  'kube-apiserver': {
    'Bindings (pods/binding)': /BindingREST\)\.Create$/,
    'pod status writes (KWOK)': /pod\/storage\.\(\*StatusREST\)\.Update$/,
    'node status writes (heartbeats)': /node\/storage\.\(\*StatusREST\)\.Update$/,
    'serving watches': /handlers\.handleWatch$/,
    'encoding watch events': /watchEncoder\)\.Encode$/,
    'JSON encoding (JSON clients: the extender, the benchmark)':
      /serializer\/json\.\(\*Serializer\)\.(Encode|doEncode)$/,
    'HTTP/1.1 connections (Node clients: the extender, the benchmark; Go clients use HTTP/2)':
      /^net\/http\.\(\*conn\)\.serve$/,
    TLS: /^crypto\/tls\./,
    'storage updates (etcd round trips)': /etcd3\.\(\*store\)\.GuaranteedUpdate$/,
    admission: /admission\.chainAdmissionHandler/,
    'garbage collection (mark)': /gcBgMarkWorker$/,
  },
  'tessera extender': {
    'answering the verbs': /JS:.*(serveVerb|extender\/app\.ts)/,
    'filter and its verdicts': /JS:.*'?(filter|evaluateNodes) file:.*(scheduler|evaluate)\.ts/,
    bind: /JS:.*'?(bind|reserve) file:.*extender\/scheduler\.ts/,
    'writing to the API server (Binding)': /JS:.*cluster-writer\.ts/,
    'watch events (informers)': /JS:.*(client-node\/dist\/(watch|informer|cache)|watched-resource)/,
    'JSON.parse': /JsonParse/,
    'JSON.stringify': /JsonStringif/,
    TLS: /TLSWrap|ssl|SSL_/,
    'garbage collection': /Scavenge|MarkCompact|Heap::CollectGarbage|ConcurrentMarking/,
  },
};

/**
 * Frames on nearly every stack that say nothing about the work: Go's runtime and net/http, the API server's filter
 * chain, the kernel's entry, Node's event loop, V8's call trampolines, stream plumbing.
 */
const PLUMBING = new RegExp(
  [
    String.raw`^runtime\.(goexit|systemstack|mcall|morestack|main)`,
    String.raw`^net/http\.(HandlerFunc|serverHandler|\(\*conn\)|initALPNRequest|\(\*initALPNRequest)`,
    String.raw`^k8s\.io/apiserver/pkg/(server\.|server/filters|server/mux|endpoints/filters|endpoints/filterlatency)`,
    String.raw`^k8s\.io/kube-aggregator/`,
    String.raw`^go\.opentelemetry\.io/`,
    String.raw`^golang\.org/x/net/http2\.\(\*serverConn\)\.(runHandler|scheduleHandler)`,
    String.raw`^k8s\.io/apimachinery/pkg/util/wait\.`,
    '^(do_syscall_64|entry_SYSCALL_64|__libc_start|_start$)',
    '^node::(Start|NodeMainInstance|SpinEventLoop|InternalCallbackScope|InternalMakeCallback|AsyncWrap|LibuvStreamWrap|http_parser::Parser::OnStreamRead)',
    '^uv_|^uv__',
    String.raw`^v8::(Function::Call|internal::\(anonymous namespace\)::Invoke|internal::Execution::Call)`,
    '^Builtins_(JSEntry|JSEntryTrampoline|RunMicrotasks|CallFunction|CallApiCallback)',
    "^JS:.'?(processTicksAndRejections|emit|runMicrotasks|runInAsyncScope) ",
  ].join('|'),
);

/** Call stacks (leaf first, symbol names) of the samples of the given processes, from `perf script`. */
async function samplesOf(data: string, pids: ReadonlySet<number>): Promise<Map<number, string[][]>> {
  const script = spawn('perf', ['script', '-i', data, '-F', 'pid,tid,ip,sym'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const out = new Map<number, string[][]>();
  let current: string[] | null = null;
  for await (const line of createInterface({ input: script.stdout! })) {
    const head = /^\s*(\d+)\/\d+\s*$/.exec(line);
    if (head) {
      const pid = Number(head[1]);
      current = pids.has(pid) ? [] : null;
      if (current) {
        const list = out.get(pid);
        if (list) list.push(current);
        else out.set(pid, [current]);
      }
      continue;
    }
    if (!current) continue;
    const frame = /^\s*[0-9a-f]+\s+(.*)$/.exec(line);
    if (frame) current.push(frame[1]!.replace(/\+0x[0-9a-f]+$/, '').trim());
  }
  return out;
}
