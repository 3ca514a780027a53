// Builds a Go command at a pinned module version into .cache/<name>/<version>/ with `go install pkg@version`, so that it
// is built with the dependency versions its own go.mod pins (they differ from the control plane's module). Only the
// first run builds; the Go build and module caches are shared with every other build. Concurrent callers wait on one
// lock.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { goBinary, withBuildLock } from './build.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface GoTool {
  /** The cache folder's name, e.g. kwok or prometheus. */
  readonly name: string;
  readonly version: string;
  /** Import paths of the commands to build from that module version, e.g. sigs.k8s.io/kwok/cmd/kwok. */
  readonly packages: readonly string[];
  /** `-ldflags` for the build, e.g. the `-X` version stamps a project's release Makefile sets. */
  readonly ldflags?: string;
  /** Build tags, as the project's release Makefile sets them (e.g. containerd's `no_btrfs`). */
  readonly tags?: readonly string[];
}

/** The folder holding the built commands (one file per package, named after its last path element). */
export function ensureGoInstalled(tool: GoTool, log: (line: string) => void = () => {}): string {
  const dir = join(REPO, '.cache', tool.name, tool.version);
  const commands = tool.packages.map((p) => join(dir, p.split('/').at(-1)!));
  const complete = (): boolean => commands.every((c) => existsSync(c));
  if (complete()) return dir;
  withBuildLock(dir, complete, () => {
    const staging = `${dir}.partial`;
    rmSync(staging, { recursive: true, force: true });
    mkdirSync(staging, { recursive: true });
    log(`building ${tool.packages.map((p) => p.split('/').at(-1)).join(', ')} ${tool.version} (first run only)...`);
    const started = Date.now();
    const ldflags = tool.ldflags ? [`-ldflags=${tool.ldflags}`] : [];
    const tags = tool.tags?.length ? [`-tags=${tool.tags.join(',')}`] : [];
    execFileSync(
      goBinary(),
      ['install', '-trimpath', ...ldflags, ...tags, ...tool.packages.map((p) => `${p}@${tool.version}`)],
      {
        // Outside any Go module, so that `go install pkg@version` resolves the module's own requirements.
        cwd: staging,
        stdio: ['ignore', 'inherit', 'inherit'],
        env: { ...process.env, CGO_ENABLED: '0', GOBIN: staging, GOFLAGS: '', GOWORK: 'off' },
      },
    );
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
    log(`built in ${Math.round((Date.now() - started) / 1000)} s into ${dir}`);
  });
  return dir;
}
