// docs/cli.md's CLI reference names every command and every option the commands' usage texts name.

import t from 'tap';
import { readFileSync } from 'node:fs';
import * as usage from '../../../cli/help.ts';

const README = readFileSync(new URL('../../../docs/cli.md', import.meta.url), 'utf8');

t.test('every command and option is in the CLI reference (docs/cli.md)', async (t) => {
  const start = README.indexOf('## CLI reference');
  t.ok(start >= 0, 'the section exists');
  const section = README.slice(start, README.indexOf('\n## ', start + 1));
  const texts = Object.entries(usage).filter(([name]) => name.endsWith('_USAGE')) as [string, string][];
  t.ok(texts.length >= 8);
  for (const [name, text] of texts) {
    for (const option of new Set(text.match(/--[a-z][a-z-]*/g) ?? []))
      t.ok(section.includes(`\`${option}`) || section.includes(` ${option}`), `${name}: ${option} is documented`);
    for (const command of new Set([...text.matchAll(/^tessera ([a-z]+(?: [a-z]+)?)/gm)].map((m) => m[1]!)))
      t.ok(section.includes(`\`${command}`), `${name}: "${command}" is documented`);
  }
  for (const code of ['**0**', '**1**', '**2**']) t.ok(section.includes(code), `exit code ${code} is documented`);
});
