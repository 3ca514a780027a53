// `npm run bench:cli [-- --runs N]`: start-up time of the `tessera` command as users run it (node_modules/.bin/tessera,
// the launcher that runs the bundle in dist/) for `version`, `--help` and `policy lint` of the example policy: the
// median wall time of N runs each, against a budget of 300 ms. The TypeScript sources (TESSERA_SOURCES=1, what
// development runs) and `npx tessera version` (npm's own start on top) are printed beside it for comparison. Builds
// the bundle first when it is stale. Exits 1 when a median misses the budget.

import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bundleCli } from '../../cli/bundle.ts';

const BUDGET_MS = 300;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LAUNCHER = fileURLToPath(new URL('../../node_modules/.bin/tessera', import.meta.url));
const POLICY = fileURLToPath(new URL('../../../shared/examples/policy.yaml', import.meta.url));
const COMMANDS: readonly (readonly string[])[] = [['version'], ['--help'], ['policy', 'lint', POLICY]];

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' } } });
const runs = Number(values.runs);

/** Wall time of one run in ms; throws when the command fails or says which build it ran otherwise than expected. */
function timed(command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): number {
  const started = performance.now();
  const r = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
  const ms = performance.now() - started;
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

const build = spawnSync(LAUNCHER, ['version', '--json'], { cwd: ROOT, encoding: 'utf8' });
if (!/"build":"bundle"/.test(build.stdout)) {
  const started = performance.now();
  await bundleCli();
  console.log(`bench:cli: the bundle was stale or missing; built it in ${(performance.now() - started).toFixed(0)} ms`);
}
const which = JSON.parse(spawnSync(LAUNCHER, ['version', '--json'], { cwd: ROOT, encoding: 'utf8' }).stdout) as {
  build: string;
  node: string;
};
if (which.build !== 'bundle') throw new Error(`the launcher runs the ${which.build}, not the bundle, after a build`);
console.log(
  `bench:cli: node_modules/.bin/tessera (the bundle, Node.js ${which.node}), median of ${runs} runs, load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
let ok = true;
for (const args of COMMANDS) {
  timed(LAUNCHER, args); // warm the file cache
  const times = Array.from({ length: runs }, () => timed(LAUNCHER, args));
  const sources = Array.from({ length: 3 }, () => timed(LAUNCHER, args, { TESSERA_SOURCES: '1' }));
  const m = median(times);
  ok &&= m < BUDGET_MS;
  const label = `tessera ${args.map((a) => (a === POLICY ? '../shared/examples/policy.yaml' : a)).join(' ')}`;
  console.log(
    `  ${label.padEnd(52)} ${m.toFixed(0).padStart(4)} ms (min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)})  ${m < BUDGET_MS ? 'PASS' : 'FAIL'}   sources: ${median(sources).toFixed(0)} ms`,
  );
}
const npx = Array.from({ length: 3 }, () => timed('npx', ['tessera', 'version']));
console.log(`  npx tessera version (npm's start included, not budgeted)   ${median(npx).toFixed(0).padStart(4)} ms`);
console.log(`budget: every median under ${BUDGET_MS} ms: ${ok ? 'PASS' : 'FAIL'}`);
process.exitCode = ok ? 0 : 1;
