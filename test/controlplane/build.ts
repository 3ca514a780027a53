// Builds the upstream control-plane binaries (etcd, kube-apiserver, kube-scheduler, kubectl, kube-controller-manager)
// from a Go module, at the versions its go.mod pins, into .cache/controlplane/<versions>/. The module beside this file
// pins the default Kubernetes (the one `npm test` runs); `k8s-<minor>/` beside it pins another supported minor, chosen
// with TESSERA_KUBERNETES=<minor> (`npm run test:e2e -- --kubernetes 1.34` sets it). Only the first run of a version
// builds (about 7 minutes on 2 cores); later runs find the binaries. Concurrent callers (parallel test files) wait on
// one lock. kube-controller-manager came later: a cache built without it gets it added on its own.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withBuildLock } from './build-lock.ts';

export { withBuildLock };

const MODULE_DIR = dirname(fileURLToPath(import.meta.url));
const REPO = join(MODULE_DIR, '..', '..');

/** The environment variable that picks the Kubernetes minor the control plane is built at (unset: the default). */
export const KUBERNETES_ENV = 'TESSERA_KUBERNETES';

/** The Go module that pins `minor` ("1.34"), or the default module for undefined/empty. */
export function moduleDir(minor: string | undefined = process.env[KUBERNETES_ENV]): string {
  if (minor === undefined || minor === '' || pinned('k8s.io/kubernetes', MODULE_DIR).startsWith(`v${minor}.`)) {
    return MODULE_DIR;
  }
  const dir = join(MODULE_DIR, `k8s-${minor}`);
  if (!existsSync(join(dir, 'go.mod'))) {
    const known = readdirSync(MODULE_DIR).filter((d) => d.startsWith('k8s-'));
    throw new Error(
      `${KUBERNETES_ENV}=${minor}: no test/controlplane/k8s-${minor}/go.mod; the versions are the default (${pinned('k8s.io/kubernetes', MODULE_DIR)}) and ${known.join(', ') || 'no other'}`,
    );
  }
  return dir;
}

export interface ControlPlaneBinaries {
  readonly dir: string;
  /** The Go module the binaries are built from. */
  readonly moduleDir: string;
  readonly etcd: string;
  readonly apiserver: string;
  readonly scheduler: string;
  readonly kubectl: string;
  readonly controllerManager: string;
  readonly kubernetesVersion: string;
  readonly etcdVersion: string;
  /**
   * Feature gates the control plane runs with at this version (the module directory's `feature-gates` file, one
   * Name=true per line): what Tessera's docs ask of a cluster at that version (docs/operations.md).
   */
  readonly featureGates: readonly string[];
}

function featureGatesOf(module: string): string[] {
  const file = join(module, 'feature-gates');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => l !== '');
}

function pinned(module: string, dir: string): string {
  const goMod = readFileSync(join(dir, 'go.mod'), 'utf8');
  const m = new RegExp(`^\\s*${module.replaceAll('.', '\\.')}\\s+(v\\S+)`, 'm').exec(goMod);
  if (!m) throw new Error(`${join(dir, 'go.mod')} does not pin ${module}`);
  return m[1]!;
}

export function binaries(module: string = moduleDir()): ControlPlaneBinaries {
  const kubernetesVersion = pinned('k8s.io/kubernetes', module);
  const etcdVersion = pinned('go.etcd.io/etcd/server/v3', module);
  const dir = join(REPO, '.cache', 'controlplane', `k8s-${kubernetesVersion}_etcd-${etcdVersion}`);
  return {
    dir,
    moduleDir: module,
    etcd: join(dir, 'etcd'),
    apiserver: join(dir, 'kube-apiserver'),
    scheduler: join(dir, 'kube-scheduler'),
    kubectl: join(dir, 'kubectl'),
    controllerManager: join(dir, 'kube-controller-manager'),
    kubernetesVersion,
    etcdVersion,
    featureGates: featureGatesOf(module),
  };
}

function complete(b: ControlPlaneBinaries): boolean {
  return [b.etcd, b.apiserver, b.scheduler, b.kubectl].every((f) => existsSync(f));
}

/** `go` from PATH, else the machine's standard install location. */
export function goBinary(): string {
  if (process.env.GO) return process.env.GO;
  const onPath = (process.env.PATH ?? '').split(':').some((dir) => dir !== '' && existsSync(join(dir, 'go')));
  return onPath ? 'go' : '/usr/local/go/bin/go';
}

/** `go build` of main packages from the module beside this file into `out` (a directory). */
export function goBuild(b: ControlPlaneBinaries, out: string, packages: readonly string[]): void {
  // Stamp the version the binaries would carry from a release build, so that clients and skew checks see it.
  const minor = /^v1\.(\d+)\./.exec(b.kubernetesVersion)?.[1] ?? '0';
  const ldflags = [
    `-X k8s.io/component-base/version.gitVersion=${b.kubernetesVersion}`,
    '-X k8s.io/component-base/version.gitMajor=1',
    `-X k8s.io/component-base/version.gitMinor=${minor}`,
    '-X k8s.io/component-base/version.gitTreeState=clean',
  ].join(' ');
  execFileSync(goBinary(), ['build', '-trimpath', `-ldflags=${ldflags}`, '-o', out, ...packages], {
    cwd: b.moduleDir,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
  });
}

/** Returns the binaries, building them first if this version set has not been built on this machine. */
export function ensureControlPlane(log: (line: string) => void = () => {}): ControlPlaneBinaries {
  const b = binaries();
  withBuildLock(
    b.dir,
    () => complete(b),
    () => {
      const staging = `${b.dir}.partial`;
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(staging, { recursive: true });
      log(
        `building kube-apiserver, kube-scheduler, kubectl, kube-controller-manager ${b.kubernetesVersion} and etcd ${b.etcdVersion} (first run only)...`,
      );
      const started = Date.now();
      goBuild(b, staging, [
        'go.etcd.io/etcd/server/v3',
        'k8s.io/kubernetes/cmd/kube-apiserver',
        'k8s.io/kubernetes/cmd/kube-scheduler',
        'k8s.io/kubernetes/cmd/kubectl',
        'k8s.io/kubernetes/cmd/kube-controller-manager',
      ]);
      // `go build` names the etcd main package after its module directory.
      renameSync(join(staging, 'server'), join(staging, 'etcd'));
      rmSync(b.dir, { recursive: true, force: true });
      renameSync(staging, b.dir);
      log(`built in ${Math.round((Date.now() - started) / 1000)} s into ${b.dir}`);
    },
  );
  return b;
}

/**
 * Returns the binaries with kube-controller-manager, building it into the existing directory if that was built before
 * it was part of the set (the other binaries, which running clusters may be using, are left alone).
 */
export function ensureControllerManager(log: (line: string) => void = () => {}): ControlPlaneBinaries {
  const b = ensureControlPlane(log);
  withBuildLock(
    b.controllerManager,
    () => existsSync(b.controllerManager),
    () => {
      const staging = `${b.controllerManager}.partial`;
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(staging);
      log(`building kube-controller-manager ${b.kubernetesVersion} (first run only)...`);
      const started = Date.now();
      goBuild(b, staging, ['k8s.io/kubernetes/cmd/kube-controller-manager']);
      renameSync(join(staging, 'kube-controller-manager'), b.controllerManager);
      rmSync(staging, { recursive: true, force: true });
      log(`built in ${Math.round((Date.now() - started) / 1000)} s`);
    },
  );
  return b;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const b = ensureControllerManager((l) => console.log(l));
  console.log(`control plane: kubernetes ${b.kubernetesVersion}, etcd ${b.etcdVersion} in ${b.dir}`);
}
