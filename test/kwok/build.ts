// Builds KWOK (sigs.k8s.io/kwok, cmd/kwok) at the pinned version into .cache/kwok/<version>/kwok (about 6 minutes
// cold on 2 cores, first run only).

import { join } from 'node:path';
import { ensureGoInstalled } from '../controlplane/go-install.ts';

/** The KWOK release the tests run; bump it here (and check the Stage files in test/kwok/stages/ against it). */
export const KWOK_VERSION = 'v0.8.0';

export interface KwokBinary {
  readonly dir: string;
  readonly kwok: string;
  readonly version: string;
}

/** Returns the kwok binary, building it first if this version has not been built on this machine. */
export function ensureKwok(log: (line: string) => void = () => {}): KwokBinary {
  const dir = ensureGoInstalled({ name: 'kwok', version: KWOK_VERSION, packages: ['sigs.k8s.io/kwok/cmd/kwok'] }, log);
  return { dir, kwok: join(dir, 'kwok'), version: KWOK_VERSION };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const b = ensureKwok((l) => console.log(l));
  console.log(`kwok ${b.version} in ${b.dir}`);
}
