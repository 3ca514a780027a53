// The documented ways to run the CLI from the checkout give clean output: `--json` output parses as JSON, with no npm
// banner in front of it and nothing on stderr (npx runs node_modules/.bin/tessera itself: no EBADENGINE from an install
// into its cache on a machine whose system Node.js is older), and runs on the Node.js of node_modules. The launcher
// runs the bundle while it is fresh and the sources once any file it was built from is newer.

import t from 'tap';
import { existsSync, statSync, utimesSync } from 'node:fs';
import { bundleCli, DIST } from '../../../cli/bundle.ts';
import { runCli } from '../../fixtures/cli.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;

t.test('npx tessera and npm run -s tessera print nothing but the command output', async (t) => {
  const commands = [
    ['npx', 'tessera'],
    ['npm', 'run', '--silent', 'tessera', '--'],
  ];
  const runs = await Promise.all(
    commands.map((command) => runCli(['version', '--json'], { command, cwd: ROOT, timeoutMs: 100_000 })),
  );
  for (const [i, command] of commands.entries()) {
    const r = runs[i]!;
    t.equal(r.code, 0, `${command.join(' ')}: ${r.stderr}`);
    t.equal(r.stderr, '', `${command.join(' ')}: nothing on stderr`);
    let parsed: { tessera?: string; node?: string } = {};
    t.doesNotThrow(
      () => {
        parsed = JSON.parse(r.stdout);
      },
      `${command.join(' ')}: stdout is only JSON: ${JSON.stringify(r.stdout.slice(0, 120))}`,
    );
    t.match(parsed.node, /^v24\./, `${command.join(' ')} runs on the Node.js of node_modules`);
  }
});

t.test('npx tessera runs the bundle while it is fresh, the sources once it is stale', async (t) => {
  const fresh = existsSync(`${DIST}/tessera.mjs`);
  // Build only when missing: `npm ci` (prepare) built it, and other test files may be running it right now.
  if (!fresh) await bundleCli();
  const bundle = `${DIST}/tessera.mjs`;
  const built = statSync(bundle);
  const which = async () => {
    const r = await runCli(['version', '--json'], { command: ['npx', 'tessera'], cwd: ROOT, timeoutMs: 100_000 });
    return (JSON.parse(r.stdout) as { build: string }).build;
  };
  // Older than package.json (one of its inputs): stale.
  utimesSync(bundle, built.atime, new Date(statSync(`${ROOT}package.json`).mtimeMs - 60_000));
  t.teardown(() => utimesSync(bundle, built.atime, built.mtime));
  t.equal(await which(), 'sources', 'a stale bundle is not run');
  utimesSync(bundle, built.atime, new Date());
  t.equal(await which(), 'bundle', 'a fresh bundle is');
  const forced = await runCli(['version', '--json'], {
    command: ['npx', 'tessera'],
    cwd: ROOT,
    timeoutMs: 100_000,
    env: { ...process.env, TESSERA_SOURCES: '1' },
  });
  t.equal((JSON.parse(forced.stdout) as { build: string }).build, 'sources', 'TESSERA_SOURCES=1 runs the sources');
});
