// What the real node needs that is built here, on first use only:
// - kubelet and kube-proxy from the control plane's Go module (the pinned k8s.io/kubernetes, so the same version as
//   kube-apiserver and the same Go build cache), into .cache/controlplane/k8s-<version>_node/;
// - two images no registry can give this machine: the pod sandbox image (pause, compiled from the pause.c that the
//   same k8s.io/kubernetes module ships, static) and the kube-scheduler image that manifests/base/scheduler.yaml
//   names (the kube-scheduler binary the control plane already built, FROM scratch), as OCI archives in
//   .cache/node/, built with buildah in private storage (nothing is left in the machine's buildah/podman store).

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { binaries, ensureControlPlane, goBinary, goBuild, withBuildLock } from '../controlplane/build.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MODULE_DIR = join(REPO, 'test', 'controlplane');

export interface NodeBinaries {
  readonly kubelet: string;
  readonly kubeProxy: string;
  readonly kubernetesVersion: string;
}

export function ensureNodeBinaries(log: (line: string) => void = () => {}): NodeBinaries {
  const b = binaries();
  const dir = `${b.dir.replace(/_etcd-[^/]+$/, '')}_node`;
  const out = {
    kubelet: join(dir, 'kubelet'),
    kubeProxy: join(dir, 'kube-proxy'),
    kubernetesVersion: b.kubernetesVersion,
  };
  withBuildLock(
    dir,
    () => existsSync(out.kubelet) && existsSync(out.kubeProxy),
    () => {
      const staging = `${dir}.partial`;
      rmSync(staging, { recursive: true, force: true });
      mkdirSync(staging, { recursive: true });
      log(`building kubelet and kube-proxy ${b.kubernetesVersion} (first run only)...`);
      const started = Date.now();
      goBuild(b, staging, ['k8s.io/kubernetes/cmd/kubelet', 'k8s.io/kubernetes/cmd/kube-proxy']);
      rmSync(dir, { recursive: true, force: true });
      renameSync(staging, dir);
      log(`built in ${Math.round((Date.now() - started) / 1000)} s into ${dir}`);
    },
  );
  return out;
}

/** The directory of the pinned k8s.io/kubernetes module's source (in the Go module cache). */
function kubernetesSource(): string {
  return execFileSync(goBinary(), ['list', '-m', '-f', '{{.Dir}}', 'k8s.io/kubernetes'], {
    cwd: MODULE_DIR,
    encoding: 'utf8',
    env: { ...process.env, GOFLAGS: '-mod=mod' },
  }).trim();
}

export interface LocalImage {
  /** The reference pods name, e.g. registry.k8s.io/pause:3.10.2. */
  readonly ref: string;
  /** An OCI archive holding it. */
  readonly archive: string;
}

/** buildah with its own storage in `work` (vfs, chroot isolation): nothing lands in the machine's image store. */
function buildah(work: string, args: string[]): string {
  return execFileSync(
    'buildah',
    ['--root', join(work, 'root'), '--runroot', join(work, 'runroot'), '--storage-driver', 'vfs', ...args],
    { encoding: 'utf8', env: { ...process.env, BUILDAH_ISOLATION: 'chroot' }, stdio: ['ignore', 'pipe', 'pipe'] },
  ).trim();
}

/** An image FROM scratch holding `files` (path in the image -> file on the host), exported as an OCI archive. */
function scratchImage(
  ref: string,
  archive: string,
  files: Record<string, string>,
  config: { entrypoint?: string[]; user: string; env?: string[] },
): void {
  const work = mkdtempSync(join(tmpdir(), 'tessera-node-image-'));
  try {
    const container = buildah(work, ['from', 'scratch']);
    for (const [path, file] of Object.entries(files)) buildah(work, ['copy', '--chmod', '0755', container, file, path]);
    buildah(work, [
      'config',
      '--user',
      config.user,
      ...(config.entrypoint ? ['--entrypoint', JSON.stringify(config.entrypoint)] : []),
      ...(config.env ?? []).flatMap((e) => ['--env', e]),
      container,
    ]);
    buildah(work, ['commit', '--quiet', container, ref]);
    mkdirSync(dirname(archive), { recursive: true });
    const partial = `${archive}.partial`;
    rmSync(partial, { force: true });
    buildah(work, ['push', '--quiet', ref, `oci-archive:${partial}:${ref}`]);
    renameSync(partial, archive);
    // vfs layers are plain directories, some read-only: make them removable.
    execFileSync('chmod', ['-R', 'u+w', work]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The pod sandbox image: pause.c from the pinned k8s.io/kubernetes module, compiled static as upstream does. */
export function ensurePauseImage(log: (line: string) => void = () => {}): LocalImage {
  const src = join(kubernetesSource(), 'build', 'pause');
  const makefile = readFileSync(join(src, 'Makefile'), 'utf8');
  const tag = /^TAG \?= (\S+)/m.exec(makefile)?.[1] ?? '3.10';
  const ref = `registry.k8s.io/pause:${tag}`;
  const archive = join(REPO, '.cache', 'node', `pause-${tag}.oci.tar`);
  withBuildLock(
    archive,
    () => existsSync(archive),
    () => {
      log(`building ${ref} from ${join(src, 'linux', 'pause.c')} (first run only)`);
      const work = mkdtempSync(join(tmpdir(), 'tessera-pause-'));
      try {
        execFileSync('gcc', [
          '-Os',
          '-Wall',
          '-Werror',
          '-static',
          `-DVERSION=v${tag}-tessera`,
          '-o',
          join(work, 'pause'),
          join(src, 'linux', 'pause.c'),
        ]);
        scratchImage(ref, archive, { '/pause': join(work, 'pause') }, { entrypoint: ['/pause'], user: '65535:65535' });
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
  );
  return { ref, archive };
}

/** The image manifests/base/scheduler.yaml runs: kube-scheduler (the binary the control plane built) on PATH. */
export function ensureSchedulerImage(log: (line: string) => void = () => {}): LocalImage {
  const b = ensureControlPlane(log);
  const ref = `registry.k8s.io/kube-scheduler:${b.kubernetesVersion}`;
  const archive = join(REPO, '.cache', 'node', `kube-scheduler-${b.kubernetesVersion}.oci.tar`);
  withBuildLock(
    archive,
    () => existsSync(archive),
    () => {
      log(`building ${ref} from ${b.scheduler} (first run only)`);
      const work = mkdtempSync(join(tmpdir(), 'tessera-kube-scheduler-'));
      try {
        copyFileSync(b.scheduler, join(work, 'kube-scheduler'));
        scratchImage(
          ref,
          archive,
          { '/usr/local/bin/kube-scheduler': join(work, 'kube-scheduler') },
          { user: '65532:65532', env: ['PATH=/usr/local/bin'] },
        );
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
  );
  return { ref, archive };
}

/**
 * The image fraction pods on the real node run: gpu-reporter/reporter.c compiled static, FROM scratch. It prints what
 * its container sees of GPUs (variables, device nodes, device-list mounts) and waits. Named under the registry the
 * example policy allows tenant payments-ml (rule eu-registry-only), so both tenants can run it; tagged by its source's
 * hash, so that a changed reporter is a new image.
 */
export function ensureGpuReporterImage(log: (line: string) => void = () => {}): LocalImage {
  const source = join(REPO, 'test', 'node', 'gpu-reporter', 'reporter.c');
  const tag = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 12);
  const ref = `registry.eu.acme.example/tessera-gpu-reporter:${tag}`;
  const archive = join(REPO, '.cache', 'node', `gpu-reporter-${tag}.oci.tar`);
  withBuildLock(
    archive,
    () => existsSync(archive),
    () => {
      log(`building ${ref} from ${source}`);
      const work = mkdtempSync(join(tmpdir(), 'tessera-gpu-reporter-'));
      try {
        execFileSync('gcc', ['-Os', '-Wall', '-Werror', '-static', '-o', join(work, 'reporter'), source]);
        scratchImage(
          ref,
          archive,
          { '/reporter': join(work, 'reporter') },
          { entrypoint: ['/reporter'], user: '65532:65532' },
        );
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
  );
  return { ref, archive };
}

/** The newest modification time of the files the Tessera image is built from. */
function newestSource(): number {
  let newest = 0;
  const walk = (p: string): void => {
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of [...IMAGE_SOURCES, 'package.json', 'package-lock.json', 'manifests/Dockerfile', 'manifests/image'])
    walk(join(REPO, p));
  return newest;
}

const IMAGE_SOURCES = ['core', 'server', 'webhook', 'extender', 'certs', 'cli', 'agent'];

/** The Tessera image `npm run image` builds, built again first if the archive is missing or older than a source. */
export function ensureTesseraImage(log: (line: string) => void = () => {}): LocalImage {
  const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
  const archive = join(REPO, '.cache', 'image', `tessera-${version}.oci.tar`);
  const built = statSync(archive, { throwIfNoEntry: false })?.mtimeMs;
  const image = { ref: `localhost/tessera:${version}`, archive };
  if (built === undefined || built < newestSource()) {
    log(`building the Tessera image (npm run image): ${built === undefined ? 'none yet' : 'a source is newer'}...`);
    const started = Date.now();
    execFileSync(process.execPath, [join(REPO, 'manifests', 'image', 'build-image.ts')], {
      cwd: REPO,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    log(`built the Tessera image in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  return image;
}
