// `npm run build:cli` (and `prepare`, and the image build): bundles the CLI into dist/ with esbuild, so that a command
// starts by loading one JavaScript file instead of Node.js stripping types from a few hundred TypeScript files. Each
// command's `import()` in cli/main.ts becomes its own chunk: `tessera version` and `--help` load neither the Kubernetes
// client nor express, and the policy schema's validator is compiled here rather than at every start. dist/inputs.json lists the project's own files the bundle was built from; the launcher
// (cli/launcher/tessera.mjs) runs the bundle only while it is newer than every one of them.

import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { build, type Plugin } from 'esbuild';
import { POLICY_SCHEMA } from '../core/policy/schema.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = join(REPO, 'dist');

/** The lines of core/policy/documents.ts that compile the policy schema when the module loads. */
const SCHEMA_COMPILE = `const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(POLICY_SCHEMA);`;

/**
 * The policy schema's validator compiled at build time (ajv's standalone code, with the options documents.ts uses),
 * so that `tessera policy lint` does not compile it at every start. The build fails if documents.ts no longer
 * compiles it with exactly these lines.
 */
const precompiledPolicySchema: Plugin = {
  name: 'precompiled-policy-schema',
  setup(b) {
    b.onResolve({ filter: /^tessera:policy-validator$/ }, (a) => ({ path: a.path, namespace: 'tessera' }));
    b.onLoad({ filter: /.*/, namespace: 'tessera' }, () => {
      const ajv = new Ajv({ allErrors: true, strict: false, code: { source: true, esm: true } });
      return { contents: standaloneCode.default(ajv, ajv.compile(POLICY_SCHEMA)), resolveDir: REPO, loader: 'js' };
    });
    b.onLoad({ filter: /core\/policy\/documents\.ts$/ }, (a) => {
      const source = readFileSync(a.path, 'utf8');
      if (!source.includes(SCHEMA_COMPILE))
        throw new Error(`${a.path} no longer compiles the schema as cli/bundle.ts expects:\n${SCHEMA_COMPILE}`);
      return {
        contents: source.replace(SCHEMA_COMPILE, "import validate from 'tessera:policy-validator';"),
        loader: 'ts',
      };
    });
  },
};

/** Builds dist/tessera.mjs and its chunks; returns the project files it was built from (repository-relative). */
export async function bundleCli(out: string = DIST): Promise<string[]> {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const result = await build({
    absWorkingDir: REPO,
    entryPoints: { tessera: 'cli/tessera.ts' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    outdir: out,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    metafile: true,
    plugins: [precompiledPolicySchema],
    legalComments: 'linked',
    logLevel: 'warning',
    // CommonJS dependencies (express, ajv, node-forge...) call require() for Node's built-ins; ESM output has none.
    banner: {
      js: "import { createRequire as __tesseraRequire } from 'node:module'; const require = __tesseraRequire(import.meta.url);",
    },
  });
  // The node agent loads the kubelet's protos at run time from ./proto beside its module (agent/kubelet-protos.ts);
  // in the bundle that module sits in a chunk, so the protos go beside the chunks.
  const protos = readdirSync(join(REPO, 'agent', 'proto'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.proto'))
    .map((f) => `agent/proto/${f}`);
  for (const dir of ['chunks', '.']) cpSync(join(REPO, 'agent', 'proto'), join(out, dir, 'proto'), { recursive: true });
  const inputs = Object.keys(result.metafile.inputs)
    .filter((f) => !f.startsWith('node_modules/') && !f.startsWith('tessera:'))
    .concat('package.json', 'package-lock.json', ...protos)
    .sort();
  writeFileSync(join(out, 'inputs.json'), `${JSON.stringify(inputs, null, 1)}\n`);
  return inputs;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const started = Date.now();
  const inputs = await bundleCli();
  console.log(
    `bundled the CLI from ${inputs.length} project files into ${relative(process.cwd(), join(DIST, 'tessera.mjs'))} in ${Date.now() - started} ms`,
  );
}
