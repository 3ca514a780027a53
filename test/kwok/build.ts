// Builds KWOK (sigs.k8s.io/kwok, cmd/kwok) at the pinned version into .cache/kwok/<version>/kwok with
// `go install pkg@version`, so that it is built with the dependency versions its own go.mod pins (they differ from
// the control plane's module). Only the first run builds (about 6 minutes cold on 2 cores; the Go build and module
// caches are shared with the control-plane build). Concurrent callers wait on one lock.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { goBinary, withBuildLock } from '../controlplane/build.ts';

/** The KWOK release the tests run; bump it here (and check the Stage files in test/kwok/stages/ against it). */
export const KWOK_VERSION = 'v0.8.0';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface KwokBinary {
  readonly dir: string;
  readonly kwok: string;
  readonly version: string;
}

function binary(): KwokBinary {
  const dir = join(REPO, '.cache', 'kwok', KWOK_VERSION);
  return { dir, kwok: join(dir, 'kwok'), version: KWOK_VERSION };
}

/** Returns the kwok binary, building it first if this version has not been built on this machine. */
export function ensureKwok(log: (line: string) => void = () => {}): KwokBinary {
  const b = binary();
  const complete = (): boolean => existsSync(b.kwok);
  if (complete()) return b;
  withBuildLock(b.dir, complete, () => {
    const staging = `${b.dir}.partial`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    log(`building kwok ${KWOK_VERSION} (first run only)...`);
    const started = Date.now();
    execFileSync(goBinary(), ['install', '-trimpath', `sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}`], {
      // Outside any Go module, so that `go install pkg@version` resolves the module's own requirements.
      cwd: staging,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, CGO_ENABLED: '0', GOBIN: staging, GOFLAGS: '', GOWORK: 'off' },
    });
    rmSync(b.dir, { recursive: true, force: true });
    renameSync(staging, b.dir);
    log(`built in ${Math.round((Date.now() - started) / 1000)} s into ${b.dir}`);
  });
  return b;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const b = ensureKwok((l) => console.log(l));
  console.log(`kwok ${b.version} in ${b.dir}`);
}
