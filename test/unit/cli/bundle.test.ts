// The bundle (dist/, `npm run build:cli`) is the CLI the image and npx run: it must answer as the sources do, including
// the policy schema's problems, whose validator the bundle compiles at build time instead of at start.

import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleCli } from '../../../cli/bundle.ts';
import { runCli } from '../../fixtures/cli.ts';

const EXAMPLE = fileURLToPath(new URL('../../../../shared/examples/policy.yaml', import.meta.url));

t.test('the bundle lints and answers like the sources', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'tessera-bundle-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const inputs = await bundleCli(out);
  t.ok(inputs.includes('core/policy/documents.ts'), 'built from the sources');
  t.notOk(
    inputs.some((f) => f.startsWith('node_modules/')),
    'inputs.json lists the project’s own files (and the lock file)',
  );
  const bad = join(out, 'bad.yaml');
  writeFileSync(
    bad,
    'apiVersion: tessera.io/v1alpha1\nkind: GpuPool\nmetadata: { name: Bad_Name }\nspec: { fractionMode: sometimes }\n',
  );
  const bundle = [process.execPath, join(out, 'tessera.mjs')];
  for (const args of [['policy', 'lint', EXAMPLE], ['policy', 'lint', bad], ['--help'], ['policy', 'lint']]) {
    const [fromBundle, fromSources] = await Promise.all([
      runCli(args, { command: bundle, timeoutMs: 100_000 }),
      runCli(args, { timeoutMs: 100_000 }),
    ]);
    t.equal(fromBundle.code, fromSources.code, `tessera ${args.join(' ')}: same exit code`);
    t.equal(fromBundle.stdout, fromSources.stdout, `tessera ${args.join(' ')}: same output`);
    t.equal(fromBundle.stderr, fromSources.stderr, `tessera ${args.join(' ')}: same errors`);
  }
  const problems = await runCli(['policy', 'lint', bad], { command: bundle });
  t.match(problems.stdout, /\/kind: must be "TesseraPolicy"/, 'the precompiled schema finds the problems');
  t.match(problems.stdout, /\/metadata\/name: must match pattern/);
});
