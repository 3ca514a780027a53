// npm run test:node [-- --report FILE]: the real-node suite under tap. --report FILE makes the suite write what every
// fraction pod that ran was assigned and what its container itself reported seeing (fraction-report.ts), as JSON.

import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = process.argv.slice(2);
const env: Record<string, string | undefined> = { ...process.env };
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--report') {
    const file = args[i + 1];
    if (!file) {
      console.error('--report needs a file name: npm run test:node -- --report report.json');
      process.exit(2);
    }
    env.TESSERA_NODE_REPORT = resolve(process.env.INIT_CWD ?? process.cwd(), file);
    i++;
  } else {
    console.error(`unknown argument ${args[i]}: npm run test:node [-- --report FILE]`);
    process.exit(2);
  }
}
const tap = join(REPO, 'node_modules', '.bin', 'tap');
const run = spawnSync(tap, ['--timeout', '1800', 'test/node/real-node.e2e.ts'], { cwd: REPO, env, stdio: 'inherit' });
process.exit(run.status ?? 1);
