// Every command answers --help with its usage and exit 0; version and --version print Tessera's and Node's versions;
// a wrong invocation exits 2 with the usage. Through the dispatcher in process, and a few as real processes.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { main } from '../../../cli/main.ts';
import { runCli } from '../../fixtures/cli.ts';

const VERSION = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

async function dispatch(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => out.push(a.join(' '));
  console.error = (...a: unknown[]) => err.push(a.join(' '));
  try {
    const code = await main(args);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

t.test('--help works on every command and subcommand', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--help'], /^usage: tessera <command>/],
    [['-h'], /^usage: tessera <command>/],
    [['help'], /^usage: tessera <command>/],
    [['help', 'certs'], /^tessera certs issue/],
    [['serve', '--help'], /^tessera serve webhook/],
    [['serve', 'webhook', '--help'], /^tessera serve webhook/],
    [['serve', 'extender', '-h'], /tessera serve extender/],
    [['serve', 'webhook', '--policy-dir', '/x', '--help'], /^tessera serve webhook/],
    [['policy', '--help'], /^tessera policy lint/],
    [['policy', 'lint', '--help'], /^tessera policy lint/],
    [['policy', 'test', '--help'], /tessera policy test/],
    [['policy', 'apply', '--help'], /tessera policy apply/],
    [['audit', '--help'], /^tessera audit/],
    [['explain', '--help'], /^tessera explain/],
    [['certs', '--help'], /^tessera certs issue/],
    [['certs', 'issue', '--help'], /^tessera certs issue/],
    [['certs', 'rotate', '--help'], /tessera certs rotate/],
    [['simulate', '--help'], /^tessera simulate/],
    [['version', '--help'], /^tessera version/],
  ];
  for (const [args, usage] of cases) {
    const r = await dispatch(args);
    t.equal(r.code, 0, `tessera ${args.join(' ')} exits 0 ${r.stderr}`);
    t.match(r.stdout, usage, `tessera ${args.join(' ')} prints its usage`);
  }
  // And as a process: the shebang entry point answers the same.
  const run = await runCli(['serve', 'webhook', '--help'], { timeoutMs: 100_000 });
  t.equal(run.code, 0);
  t.match(run.stdout, /^tessera serve webhook/);
});

t.test('version and --version', async (t) => {
  const plain = await dispatch(['version']);
  t.equal(plain.code, 0);
  t.equal(plain.stdout, `tessera ${VERSION} (Node.js ${process.version}, sources)`);
  t.equal((await dispatch(['--version'])).stdout, plain.stdout);
  t.same(JSON.parse((await dispatch(['version', '--json'])).stdout), {
    tessera: VERSION,
    node: process.version,
    build: 'sources',
  });
  const run = await runCli(['--version'], { timeoutMs: 100_000 });
  t.equal(run.code, 0);
  t.equal(run.stdout.trim(), plain.stdout);
});

t.test('a wrong invocation exits 2 with the usage; no command at all too', async (t) => {
  const unknownOption = await dispatch(['audit', '--bogus']);
  t.equal(unknownOption.code, 2);
  t.match(unknownOption.stderr, /tessera audit: Unknown option '--bogus'[\s\S]*tessera audit --policy/);
  const unknownCommand = await dispatch(['frobnicate']);
  t.equal(unknownCommand.code, 2);
  t.match(unknownCommand.stderr, /unknown command "frobnicate"/);
  const missing = await dispatch(['serve', 'webhook']);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /--policy-dir is required[\s\S]*tessera serve webhook/);
  const fleet = await dispatch(['serve', 'dispatcher']);
  t.equal(fleet.code, 2);
  t.match(fleet.stderr, /--policy-dir is required[\s\S]*tessera serve dispatcher/);
  const interval = await dispatch(['serve', 'dispatcher', '--policy-dir', '/x', '--interval', '0']);
  t.equal(interval.code, 2);
  t.match(interval.stderr, /--interval 0: expected seconds/);
  const port = await dispatch(['serve', 'extender', '--port', 'http']);
  t.equal(port.code, 2);
  t.match(port.stderr, /--port http: expected a port number/);
  const level = await dispatch(['serve', 'webhook', '--policy-dir', '/x', '--log-level', 'loud']);
  t.equal(level.code, 2);
  t.match(level.stderr, /--log-level loud: expected one of/);
  const none = await dispatch([]);
  t.equal(none.code, 2);
  t.equal(none.stdout, '', 'usage on stderr when nothing was asked');
  t.match(none.stderr, /^usage: tessera/);
});
