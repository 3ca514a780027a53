// tessera simulate: progress on a terminal only (stderr), never in --json stdout; a GPU node row without a model is
// refused with its line, an unknown model is reported.

import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simulateCommand } from '../../../cli/simulate.ts';
import { runCli } from '../../fixtures/cli.ts';

const NODES = `sn,cpu_milli,memory_mib,gpu,model
n0,32000,131072,2,T4
n1,96000,393216,8,G2
`;
const PODS = `name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
p0,4000,8192,1,500,,LS,Running,0,0,0
p1,2000,4096,1,250,T4,LS,Running,0,0,0
p2,8000,16384,2,1000,,LS,Running,0,0,0
`;

function trace(t: { teardown(fn: () => void): void }, nodes = NODES, pods = PODS) {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-sim-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'nodes.csv'), nodes);
  writeFileSync(join(dir, 'pods.csv'), pods);
  return ['--nodes', join(dir, 'nodes.csv'), '--pods', join(dir, 'pods.csv')];
}

function quietly(run: () => number): { code: number; out: string; err: string } {
  const out: string[] = [];
  const err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => out.push(a.join(' '));
  console.error = (...a: unknown[]) => err.push(a.join(' '));
  try {
    return { code: run(), out: out.join('\n'), err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

t.test('progress goes to a terminal only, never into --json stdout', async (t) => {
  const args = [...trace(t), '--seeds', '1-3', '--json'];
  const written: string[] = [];
  const tty = { isTTY: true, write: (s: string) => written.push(s) };
  const r = quietly(() => simulateCommand(args, tty));
  t.equal(r.code, 0);
  t.equal(JSON.parse(r.out).runs.length, 3, 'stdout is the JSON alone');
  t.match(written.join(''), /run 1\/3 \(tessera, seed 1\)[\s\S]*run 3\/3 \(tessera, seed 3\)/);
  const piped: string[] = [];
  quietly(() => simulateCommand(args, { isTTY: false, write: (s: string) => piped.push(s) }));
  t.same(piped, [], 'nothing when stderr is not a terminal');
  const run = await runCli(['simulate', ...args], { timeoutMs: 100_000 });
  t.equal(run.code, 0);
  t.equal(run.stderr, '', 'as a process with stderr piped: no progress');
  t.equal(JSON.parse(run.stdout).runs.length, 3);
});

t.test('a GPU node row without a model is refused; an unknown model is reported', async (t) => {
  const missing = await runCli(['simulate', ...trace(t, NODES.replace('n1,96000,393216,8,G2', 'n1,96000,393216,8,'))], {
    timeoutMs: 100_000,
  });
  t.equal(missing.code, 1);
  t.match(missing.stderr, /node list line 3: node n1 has 8 GPU\(s\) but no model/);
  const unknown = quietly(() =>
    simulateCommand([...trace(t, NODES.replace('n1,96000,393216,8,G2', 'n1,96000,393216,8,G22')), '--json']),
  );
  t.equal(unknown.code, 0);
  t.match(unknown.err, /warning: node list: model "G22" \(1 node\(s\): n1\) is neither an openb trace model/);
  t.match(JSON.parse(unknown.out).warnings, [/model "G22"/]);
  const stranded = quietly(() => simulateCommand([...trace(t, NODES.replace('T4', 'P100')), '--json']));
  t.match(stranded.err, /1 pod\(s\) accept only T4 \(gpu_spec\), which no node has; they can never be placed/);
  const cpuOnly = quietly(() => simulateCommand([...trace(t, `${NODES}c0,32000,131072,0,\n`), '--json']));
  t.equal(cpuOnly.err, '', 'a CPU node needs no model');
});

t.test('--slivers prints where the free capacity sits at 100 % arrived, and --json carries it per run', async (t) => {
  const human = quietly(() =>
    simulateCommand([...trace(t), '--seeds', '1-2', '--slivers'], { isTTY: false, write: () => true }),
  );
  t.equal(human.code, 0);
  t.match(human.out, /free GPU capacity at 100 % arrived, tessera:tessera, mean over 2 seed\(s\)/);
  t.match(human.out, /stranded \(no GPU pod fits CPU\/memory\)\s+\d+\.\d\d %/);
  t.match(human.out, /free in all\s+\d+\.\d\d %/);
  t.match(human.out, /seed 1: stranded [\d.]+, whole [\d.]+.*; free [\d.]+ %\n\s+seed 2: /);
  const json = quietly(() =>
    simulateCommand([...trace(t), '--seeds', '1', '--slivers', '--json'], { isTTY: false, write: () => true }),
  );
  const run = JSON.parse(json.out).runs[0];
  const d = run.slivers;
  t.equal(d.capacityMilli, 10000, 'two nodes, ten GPUs');
  const free = d.strandedMilli + d.wholeGpus * 1000 + d.sliverMilli.reduce((a: number, b: number) => a + b, 0);
  t.ok(free >= 0 && free <= d.capacityMilli, 'the parts add up to at most the capacity');
  const plain = quietly(() =>
    simulateCommand([...trace(t), '--seeds', '1', '--json'], { isTTY: false, write: () => true }),
  );
  t.equal(JSON.parse(plain.out).runs[0].slivers, undefined, 'without --slivers the JSON is as before');
});
