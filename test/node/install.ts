// Installs Tessera on a cluster the way the README's "Installing on a cluster" tells a user to: certificates from
// `tessera certs issue`, the TLS Secrets, `kubectl apply -k` of the shipped kustomize base (through
// manifests/overlays/local-image, which only names the locally built image and sets imagePullPolicy: Never), and the
// caBundle patched into the webhook configurations. One function, so that another way of installing (the Helm chart)
// can take its place.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LocalCluster } from '../controlplane/cluster.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OVERLAY = join(REPO, 'manifests', 'overlays', 'local-image');

export interface Installed {
  /** The webhook's CA bundle (PEM), as published in the webhook configurations. */
  readonly webhookCa: string;
  /** What `kubectl apply -k` said. */
  readonly applied: string;
}

export function kubectlFor(cluster: LocalCluster): (args: readonly string[], input?: string) => string {
  return (args, input) => {
    try {
      return execFileSync(cluster.binaries.kubectl, ['--kubeconfig', cluster.kubeconfigFor('admin'), ...args], {
        input,
        encoding: 'utf8',
        stdio: ['pipe', 'pipe', 'pipe'],
      });
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`kubectl ${args.join(' ')}: ${err.stderr?.trim() || err.message}`);
    }
  };
}

/** `tessera certs issue` as the README runs it (npx tessera ... is this CLI). */
function issue(dir: string, name: string): void {
  execFileSync(
    process.execPath,
    [
      join(REPO, 'cli', 'tessera.ts'),
      'certs',
      'issue',
      '--dir',
      dir,
      '--name',
      name,
      '--dns',
      `${name}.tessera-system.svc`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
}

export function installTessera(cluster: LocalCluster, workDir: string, image: string): Installed {
  const kubectl = kubectlFor(cluster);
  // The overlay names the image by the package's version: a version bump must bump it too.
  const overlay = readFileSync(join(OVERLAY, 'kustomization.yaml'), 'utf8');
  const named = `${/newName: (\S+)/.exec(overlay)?.[1]}:${/newTag: (\S+)/.exec(overlay)?.[1]}`;
  if (named !== image) throw new Error(`${OVERLAY}/kustomization.yaml names ${named}, but the image built is ${image}`);
  const tls = join(workDir, 'tessera-tls');
  for (const name of ['tessera-webhook', 'tessera-extender']) issue(join(tls, name.replace('tessera-', '')), name);
  kubectl(['create', 'namespace', 'tessera-system']);
  for (const name of ['webhook', 'extender']) {
    const d = join(tls, name);
    kubectl([
      '-n',
      'tessera-system',
      'create',
      'secret',
      'generic',
      `tessera-${name}-tls`,
      `--from-file=${join(d, 'tls.crt')}`,
      `--from-file=${join(d, 'tls.key')}`,
      `--from-file=${join(d, 'ca.crt')}`,
    ]);
  }
  const applied = kubectl(['apply', '-k', OVERLAY]);
  const webhookCa = readFileSync(join(tls, 'webhook', 'ca.crt'), 'utf8');
  const caBundle = Buffer.from(webhookCa).toString('base64');
  for (const kind of ['mutatingwebhookconfiguration', 'validatingwebhookconfiguration'])
    kubectl([
      'patch',
      kind,
      'tessera',
      '--type=json',
      '-p',
      JSON.stringify([{ op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: caBundle }]),
    ]);
  return { webhookCa, applied };
}
