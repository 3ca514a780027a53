// Every command answers --help with its usage and exit 0; version and --version print Tessera's and Node's versions;
// a wrong invocation exits 2 with the usage.

import t from 'tap';
import { readFileSync } from 'node:fs';
import { runCli } from '../../fixtures/cli.ts';

const VERSION = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

t.test('--help works on every command and subcommand', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--help'], /^usage: tessera <command>/],
    [['help'], /^usage: tessera <command>/],
    [['help', 'certs'], /^tessera certs issue/],
    [['serve', '--help'], /^tessera serve webhook/],
    [['serve', 'webhook', '--help'], /^tessera serve webhook/],
    [['serve', 'extender', '-h'], /tessera serve extender/],
    [['policy', '--help'], /^tessera policy lint/],
    [['policy', 'lint', '--help'], /^tessera policy lint/],
    [['policy', 'test', '--help'], /tessera policy test/],
    [['policy', 'apply', '--help'], /tessera policy apply/],
    [['audit', '--help'], /^tessera audit/],
    [['explain', '--help'], /^tessera explain/],
    [['certs', 'issue', '--help'], /^tessera certs issue/],
    [['certs', 'rotate', '--help'], /tessera certs rotate/],
    [['simulate', '--help'], /^tessera simulate/],
    [['version', '--help'], /^tessera version/],
  ];
  // A few at a time: each is a Node process loading the whole CLI, on a machine that may be busy.
  const runs: Awaited<ReturnType<typeof runCli>>[] = [];
  for (let i = 0; i < cases.length; i += 3)
    runs.push(...(await Promise.all(cases.slice(i, i + 3).map(([args]) => runCli(args, { timeoutMs: 60_000 })))));
  cases.forEach(([args, usage], i) => {
    const r = runs[i]!;
    t.equal(r.code, 0, `tessera ${args.join(' ')} exits 0 (${r.stderr.split('\n')[0]})`);
    t.match(r.stdout, usage, `tessera ${args.join(' ')} prints its usage`);
  });
});

t.test('version and --version', async (t) => {
  const [plain, flag, json] = await Promise.all([
    runCli(['version']),
    runCli(['--version']),
    runCli(['version', '--json']),
  ]);
  t.equal(plain.code, 0);
  t.equal(plain.stdout.trim(), `tessera ${VERSION} (Node.js ${process.version})`);
  t.equal(flag.stdout, plain.stdout);
  t.same(JSON.parse(json.stdout), { tessera: VERSION, node: process.version });
});

t.test('a wrong invocation exits 2 with the usage; no command at all too', async (t) => {
  const [unknownOption, unknownCommand, missing, none] = await Promise.all([
    runCli(['audit', '--bogus']),
    runCli(['frobnicate']),
    runCli(['serve', 'webhook']),
    runCli([]),
  ]);
  t.equal(unknownOption.code, 2);
  t.match(unknownOption.stderr, /tessera audit: Unknown option '--bogus'[\s\S]*tessera audit --policy/);
  t.equal(unknownCommand.code, 2);
  t.match(unknownCommand.stderr, /unknown command "frobnicate"/);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /--policy-dir is required[\s\S]*tessera serve webhook/);
  t.equal(none.code, 2);
  t.equal(none.stdout, '', 'usage on stderr when nothing was asked');
});
