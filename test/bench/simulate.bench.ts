// Benchmark: one seed of the openb default trace through the default strategy, on one core (budget: under 10 s).
// Prints the figures; exits 1 when the budget is missed. The replay is single-threaded, so its CPU time is what it takes
// on one core; the wall-clock time is printed too, and on a shared machine also counts the time it waited for a core.

import { readFileSync } from 'node:fs';
import { replay } from '../../core/simulation/replay.ts';
import { parseTraceNodes, parseTracePods } from '../../core/simulation/trace.ts';
import { DEFAULT_STRATEGY, strategyNamed } from '../../core/scoring/strategy-registry.ts';

const BUDGET_SECONDS = 10;
const dir = new URL('../../../shared/data/alibaba-openb/', import.meta.url);
const nodes = parseTraceNodes(readFileSync(new URL('openb_node_list_gpu_node.csv', dir), 'utf8'));
const pods = parseTracePods(readFileSync(new URL('openb_pod_list_default.csv', dir), 'utf8'));
const strategy = strategyNamed(process.env.STRATEGY ?? DEFAULT_STRATEGY);
const seed = Number(process.env.SEED ?? 42);
const started = performance.now();
const cpuStarted = process.cpuUsage();
const run = replay(nodes, pods, { seed, strategy });
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuStarted);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const perPod = (cpuSeconds * 1e6) / run.arrivals;
console.log(
  `simulate: openb default, strategy ${strategy.name}, seed ${seed}: ${run.arrivals} arrivals x ${nodes.length} nodes in ${cpuSeconds.toFixed(2)} s of CPU, ${seconds.toFixed(2)} s wall-clock (${perPod.toFixed(0)} µs of CPU per pod), unallocated at 100 % = ${run.unallocated['100']!.toFixed(2)} %`,
);
const ok = cpuSeconds < BUDGET_SECONDS;
console.log(`budget: one seed under ${BUDGET_SECONDS} s on one core: ${ok ? 'PASS' : 'FAIL'}`);
process.exitCode = ok ? 0 : 1;
