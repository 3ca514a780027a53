// Builds Kueue's manager (sigs.k8s.io/kueue, cmd/kueue) at the pinned version into .cache/kueue/<version>/kueue with
// `go install`, and finds its CRDs in the Go module cache (config/components/crd/bases), for the fleet test and demo.
// First run only: about 10 minutes cold on 2 cores.

import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { goBinary } from '../controlplane/build.ts';
import { ensureGoInstalled } from '../controlplane/go-install.ts';

/** The Kueue release the fleet runs; its APIs (v1beta2) and config (Configuration v1beta2) are read from this tag. */
export const KUEUE_VERSION = 'v0.17.0';
export const KUEUE_MODULE = 'sigs.k8s.io/kueue';

export interface KueueBuild {
  readonly kueue: string;
  readonly version: string;
  /** The module's source folder in the Go module cache. */
  readonly moduleDir: string;
  /** The CRD manifests, one file each. */
  readonly crdFiles: readonly string[];
}

/** The module's folder in the module cache, downloading it first if needed (`go mod download -json`). */
export function kueueModuleDir(): string {
  const out = execFileSync(goBinary(), ['mod', 'download', '-json', `${KUEUE_MODULE}@${KUEUE_VERSION}`], {
    encoding: 'utf8',
    // Outside any module, so that the download does not touch a go.mod.
    cwd: '/',
    env: { ...process.env, GOFLAGS: '', GOWORK: 'off' },
  });
  const dir = (JSON.parse(out) as { Dir?: string }).Dir;
  if (!dir || !existsSync(dir)) throw new Error(`go mod download ${KUEUE_MODULE}@${KUEUE_VERSION} gave no folder`);
  return dir;
}

export function ensureKueue(log: (line: string) => void = () => {}): KueueBuild {
  const dir = ensureGoInstalled(
    {
      name: 'kueue',
      version: KUEUE_VERSION,
      packages: [`${KUEUE_MODULE}/cmd/kueue`],
      // The stamp Kueue's Makefile sets (LD_FLAGS, version_pkg), so the manager logs and serves its real version.
      ldflags: `-X ${KUEUE_MODULE}/pkg/version.GitVersion=${KUEUE_VERSION}`,
    },
    log,
  );
  const moduleDir = kueueModuleDir();
  const crdDir = join(moduleDir, 'config', 'components', 'crd', 'bases');
  const crdFiles = readdirSync(crdDir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(crdDir, f));
  return { kueue: join(dir, 'kueue'), version: KUEUE_VERSION, moduleDir, crdFiles };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const b = ensureKueue((l) => console.log(l));
  console.log(`kueue ${b.version} in ${b.kueue}; ${b.crdFiles.length} CRDs in ${b.moduleDir}`);
}
