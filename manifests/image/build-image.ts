// `npm run image`: builds the Tessera image with buildah on a machine without a Docker daemon or a reachable image
// registry, exports it as an OCI archive, and smoke-runs it with podman: `tessera version`, then `serve webhook`
// answering /healthz (and, with no API server to reach, not /readyz), then a clean exit on SIGTERM as PID 1.
//
// The base image is made here from scratch: the Node.js binary the project already runs on (the npm `node` package)
// and the shared libraries it links, at the paths Google's distroless nodejs images use, with a nonroot user 65532.
// Debian's buildah, podman and runc are installed if missing. Flags that work on this kind of machine: chroot
// isolation and the vfs storage driver for buildah, and ulimits below podman's defaults for podman run.

import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { bundleCli } from '../../cli/bundle.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PACKAGES = ['buildah', 'podman', 'runc'];
const STORAGE = ['--storage-driver', 'vfs'];
const ULIMITS = ['--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096'];

const log = (line: string) => console.log(`image: ${line}`);

function run(command: string, args: string[], options: { input?: string; quiet?: boolean } = {}): string {
  return execFileSync(command, args, {
    encoding: 'utf8',
    input: options.input,
    env: { ...process.env, BUILDAH_ISOLATION: 'chroot' },
    stdio: ['pipe', 'pipe', options.quiet ? 'pipe' : 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  });
}

function ensurePackages(): void {
  const missing = PACKAGES.filter((p) => {
    try {
      return !run('dpkg-query', ['-W', '-f=$' + '{Status}', p], { quiet: true }).includes('install ok installed');
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0)
    throw new Error(
      `${missing.join(', ')} missing; install them (apt-get install ${missing.join(' ')}) or run as root`,
    );
  log(`installing ${missing.join(', ')} from Debian's packages`);
  run('apt-get', ['update'], { quiet: true });
  run('apt-get', ['install', '-y', '--no-install-recommends', ...missing]);
}

/** The shared libraries a binary links, as absolute paths (ldd's view, dynamic loader included). */
function linkedLibraries(binary: string): string[] {
  return run('ldd', [binary], { quiet: true })
    .split('\n')
    .map((l) => /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(l)?.[1])
    .filter((p): p is string => p !== undefined);
}

function baseRootfs(dir: string, node: string): void {
  mkdirSync(join(dir, 'nodejs', 'bin'), { recursive: true });
  copyFileSync(node, join(dir, 'nodejs', 'bin', 'node'));
  chmodSync(join(dir, 'nodejs', 'bin', 'node'), 0o755);
  for (const lib of linkedLibraries(node)) {
    mkdirSync(join(dir, dirname(lib)), { recursive: true });
    copyFileSync(realpathSync(lib), join(dir, lib));
  }
  mkdirSync(join(dir, 'etc', 'ssl', 'certs'), { recursive: true });
  writeFileSync(
    join(dir, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n',
  );
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\nnonroot:x:65532:\n');
  if (existsSync('/etc/ssl/certs/ca-certificates.crt'))
    copyFileSync('/etc/ssl/certs/ca-certificates.crt', join(dir, 'etc', 'ssl', 'certs', 'ca-certificates.crt'));
  mkdirSync(join(dir, 'tmp'), { mode: 0o1777 });
  chmodSync(join(dir, 'tmp'), 0o1777);
  mkdirSync(join(dir, 'home', 'nonroot'), { recursive: true });
}

function buildBase(work: string, tag: string): void {
  const node = realpathSync(join(REPO, 'node_modules', 'node', 'bin', 'node'));
  const rootfs = join(work, 'rootfs');
  baseRootfs(rootfs, node);
  const container = run('buildah', [...STORAGE, 'from', 'scratch'], { quiet: true }).trim();
  try {
    run('buildah', [...STORAGE, 'copy', container, rootfs, '/'], { quiet: true });
    run('buildah', [
      ...STORAGE,
      'config',
      '--user',
      '65532:65532',
      '--env',
      'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt',
      container,
    ]);
    run('buildah', [...STORAGE, 'commit', '--quiet', container, tag], { quiet: true });
  } finally {
    run('buildah', [...STORAGE, 'rm', container], { quiet: true });
  }
}

/**
 * The build context: package.json (the version `tessera version` prints) and the CLI bundle, built here (cli/bundle.ts:
 * every dependency inside it, so no node_modules, no TypeScript to strip at each start).
 */
async function buildContext(dir: string): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(REPO, 'package.json'), join(dir, 'package.json'));
  await bundleCli(join(dir, 'dist'));
}

function httpsStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, rejectUnauthorized: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(0));
    req.end();
  });
}

async function smoke(image: string, work: string): Promise<void> {
  const version = run('podman', [...STORAGE, 'run', '--rm', ...ULIMITS, '--network', 'host', image, 'version'], {
    quiet: true,
  }).trim();
  log(`tessera version in the image: ${version}`);
  if (!/^tessera \d+\.\d+\.\d+ \(Node\.js v\d+\.\d+\.\d+, bundle\)$/.test(version))
    throw new Error(`unexpected version output (the image runs the bundle): ${version}`);
  // serve webhook with real certificates and the example policy, pointed at an API server that is not there.
  const files = join(work, 'smoke');
  mkdirSync(join(files, 'policy'), { recursive: true });
  copyFileSync(join(REPO, '..', 'shared', 'examples', 'policy.yaml'), join(files, 'policy', 'policy.yaml'));
  execFileSync(
    process.execPath,
    [
      join(REPO, 'cli', 'tessera.ts'),
      'certs',
      'issue',
      '--dir',
      join(files, 'tls'),
      '--name',
      'tessera-webhook',
      '--dns',
      'localhost',
      '--ip',
      '127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  writeFileSync(
    join(files, 'kubeconfig'),
    'apiVersion: v1\nkind: Config\nclusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: none, user: {token: x}}]\ncontexts: [{name: none, context: {cluster: none, user: none}}]\ncurrent-context: none\n',
  );
  execFileSync('chmod', ['-R', 'a+rX', files]);
  const port = 18443;
  const name = `tessera-smoke-${process.pid}`;
  const server = spawn(
    'podman',
    [
      ...STORAGE,
      'run',
      '--rm',
      '--name',
      name,
      ...ULIMITS,
      '--network',
      'host',
      '-v',
      `${files}:/smoke:ro`,
      image,
      'serve',
      'webhook',
      '--kubeconfig=/smoke/kubeconfig',
      '--policy-dir=/smoke/policy',
      '--tls-cert=/smoke/tls/tls.crt',
      '--tls-key=/smoke/tls/tls.key',
      `--port=${port}`,
      '--host=127.0.0.1',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  server.stdout.on('data', (d) => (output += d));
  server.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
  const stop = async (): Promise<number | null> => {
    const stopped = Date.now();
    run('podman', [...STORAGE, 'stop', '--time', '20', name], { quiet: true });
    const code = await exited;
    log(`SIGTERM to PID 1: exited ${code} after ${((Date.now() - stopped) / 1000).toFixed(1)} s`);
    return code;
  };
  try {
    let healthz = 0;
    for (let i = 0; i < 120 && healthz !== 200; i++) {
      healthz = await httpsStatus(port, '/healthz');
      if (healthz !== 200) await new Promise((r) => setTimeout(r, 500));
    }
    if (healthz !== 200) throw new Error(`serve webhook never answered /healthz:\n${output}`);
    const readyz = await httpsStatus(port, '/readyz');
    log(`serve webhook in the image: /healthz 200, /readyz ${readyz} (no API server to sync from)`);
    if (readyz === 200) throw new Error('/readyz answered 200 without an API server');
  } catch (e) {
    await stop();
    throw e;
  }
  const code = await stop();
  if (code !== 0) throw new Error(`serve webhook did not exit cleanly on SIGTERM (exit ${code}):\n${output}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      tag: { type: 'string' },
      base: { type: 'string' },
      'context-only': { type: 'string' },
      'skip-smoke': { type: 'boolean', default: false },
    },
  });
  const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
  const work = mkdtempSync(join(tmpdir(), 'tessera-image-'));
  try {
    const context = values['context-only'] ?? join(work, 'context');
    await buildContext(context);
    if (values['context-only']) {
      log(`build context in ${context}`);
      return;
    }
    ensurePackages();
    const base = values.base ?? `localhost/tessera-base:node-${process.versions.node}`;
    if (values.base === undefined) {
      log(`base ${base}: Node.js ${process.versions.node} and the libraries it links, from scratch`);
      buildBase(work, base);
    }
    const tag = values.tag ?? `localhost/tessera:${version}`;
    const started = Date.now();
    run('buildah', [
      ...STORAGE,
      'bud',
      '--pull=never',
      '--layers=false',
      '--build-arg',
      `BASE=${base}`,
      '-f',
      join(REPO, 'manifests', 'Dockerfile'),
      '-t',
      tag,
      context,
    ]);
    log(`built ${tag} in ${Math.round((Date.now() - started) / 1000)} s`);
    const archive = join(REPO, '.cache', 'image', `tessera-${version}.oci.tar`);
    mkdirSync(dirname(archive), { recursive: true });
    rmSync(archive, { force: true });
    run('buildah', [...STORAGE, 'push', '--quiet', tag, `oci-archive:${archive}:${tag}`], { quiet: true });
    log(`exported ${archive}`);
    if (!values['skip-smoke']) await smoke(tag, work);
    log('done');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
