// `npm run build:cli` (and `prepare`, and the image build): bundles the CLI into dist/ with esbuild, so that a command
// starts by loading one JavaScript file instead of Node.js stripping types from a few hundred TypeScript files. Each
// command's `import()` in cli/main.ts becomes its own chunk: `tessera version` and `--help` load neither the Kubernetes
// client nor express. dist/inputs.json lists the project's own files the bundle was built from; the launcher
// (cli/launcher/tessera.mjs) runs the bundle only while it is newer than every one of them.

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = join(REPO, 'dist');

/** Builds dist/tessera.mjs and its chunks; returns the project files it was built from (repository-relative). */
export async function bundleCli(): Promise<string[]> {
  rmSync(DIST, { recursive: true, force: true });
  mkdirSync(DIST, { recursive: true });
  const result = await build({
    absWorkingDir: REPO,
    entryPoints: { tessera: 'cli/tessera.ts' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    outdir: DIST,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    metafile: true,
    legalComments: 'linked',
    logLevel: 'warning',
    // CommonJS dependencies (express, ajv, node-forge...) call require() for Node's built-ins; ESM output has none.
    banner: {
      js: "import { createRequire as __tesseraRequire } from 'node:module'; const require = __tesseraRequire(import.meta.url);",
    },
  });
  const inputs = Object.keys(result.metafile.inputs)
    .filter((f) => !f.startsWith('node_modules/'))
    .concat('package.json', 'package-lock.json')
    .sort();
  writeFileSync(join(DIST, 'inputs.json'), `${JSON.stringify(inputs, null, 1)}\n`);
  return inputs;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const started = Date.now();
  const inputs = await bundleCli();
  console.log(
    `bundled the CLI from ${inputs.length} project files into ${relative(process.cwd(), join(DIST, 'tessera.mjs'))} in ${Date.now() - started} ms`,
  );
}
