// `npm run test:e2e [-- --kubernetes 1.34] [FILE...]`: the e2e suite (every test/e2e/*.e2e.ts, or the files named)
// against the control plane of a supported Kubernetes minor: the default (test/controlplane/go.mod, what `npm test`
// runs) or another one pinned in test/controlplane/k8s-<minor>/go.mod. Builds what the suite needs first (each build
// only once per machine), then runs tap with TESSERA_KUBERNETES set, which test/controlplane/build.ts reads.

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { binaries, KUBERNETES_ENV, moduleDir } from '../controlplane/build.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const { values, positionals } = parseArgs({
  options: { kubernetes: { type: 'string' }, help: { type: 'boolean', default: false } },
  allowPositionals: true,
});
if (values.help) {
  console.log('npm run test:e2e [-- --kubernetes MINOR] [test/e2e/FILE.e2e.ts...]');
  process.exit(0);
}
const env = { ...process.env };
if (values.kubernetes !== undefined) env[KUBERNETES_ENV] = values.kubernetes.replace(/^v/, '');
const minor = env[KUBERNETES_ENV];
// Fails with the list of the supported versions before anything runs.
const b = binaries(moduleDir(minor));
console.log(`e2e: Kubernetes ${b.kubernetesVersion}, etcd ${b.etcdVersion}`);

function run(command: string, args: string[]): void {
  const r = spawnSync(command, args, { cwd: ROOT, env, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

for (const build of [
  'test/controlplane/build.ts',
  'test/kwok/build.ts',
  'test/prometheus/build.ts',
  'test/helm/build.ts',
])
  run(process.execPath, [build]);
const files =
  positionals.length > 0
    ? positionals
    : readdirSync(new URL('./', import.meta.url))
        .filter((f) => f.endsWith('.e2e.ts'))
        .sort()
        .map((f) => `test/e2e/${f}`);
run(fileURLToPath(new URL('../../node_modules/.bin/tap', import.meta.url)), ['--timeout', '600', ...files]);
