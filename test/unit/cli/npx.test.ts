// The documented ways to run the CLI from the checkout give clean stdout: `--json` output parses as JSON, with no npm
// banner in front of it, and runs on the Node.js of node_modules.

import t from 'tap';
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
