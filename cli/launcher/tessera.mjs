#!/usr/bin/env node
// The `tessera` command of a checkout (node_modules/.bin/tessera, what `npx tessera` runs): the bundle in dist/
// (`npm run build:cli`, also run by `npm ci`) while it is newer than every project file it was built from, otherwise
// the TypeScript sources through Node.js's type stripping, as in development. TESSERA_SOURCES=1 forces the sources.
// Plain JavaScript, so that deciding costs a few file stats and no type stripping.

import { readFileSync, statSync } from 'node:fs';
import * as nodeModule from 'node:module';

const root = new URL('../../', import.meta.url);
const bundle = new URL('dist/tessera.mjs', root);

function bundleIsFresh() {
  try {
    const built = statSync(bundle).mtimeMs;
    const inputs = JSON.parse(readFileSync(new URL('dist/inputs.json', root), 'utf8'));
    return inputs.length > 0 && inputs.every((file) => statSync(new URL(file, root)).mtimeMs <= built);
  } catch {
    return false;
  }
}

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(
    `tessera needs Node.js 22.19 or later (type stripping, and the bundle's target); this is ${process.version}`,
  );
  process.exit(1);
}
// V8's on-disk code cache (Node.js's own, in the OS temp directory; NODE_DISABLE_COMPILE_CACHE=1 turns it off): the
// bundle is parsed and compiled once, not at every start, which is most of what a short command costs. Where the cache
// cannot be written (a read-only file system) Node.js reports it and runs on without it.
nodeModule.enableCompileCache();
await import(process.env.TESSERA_SOURCES !== '1' && bundleIsFresh() ? bundle : new URL('cli/tessera.ts', root));
