// Installs Tessera on a cluster the two ways the README tells a user to. `installWithHelm` (what test:node runs): the
// namespace labelled restricted, then `helm install` of charts/tessera with the locally built image and
// imagePullPolicy Never, the certificates made by the chart's own hook Job (a pod on the real node) and the caBundle
// set by it. `installTessera` ("Installing on a cluster", TESSERA_NODE_INSTALL=kustomize): certificates from
// `tessera certs issue`, the TLS Secrets, `kubectl apply -k` of the shipped kustomize base (through
// manifests/overlays/local-image, which only names the locally built image and sets imagePullPolicy: Never), and the
// caBundle patched into the webhook configurations.

import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LocalCluster } from '../controlplane/cluster.ts';
import { ensureHelm } from '../helm/build.ts';
import { AGENT_NAMESPACE } from './agent-process.ts';
import { CHART } from '../helm/render.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OVERLAY = join(REPO, 'manifests', 'overlays', 'local-image');

export interface Installed {
  /** How: `helm install` of the chart, or `kubectl apply -k` of the base. */
  readonly how: 'helm' | 'kustomize';
  /** The webhook's CA bundle (PEM), as published in the webhook configurations. */
  readonly webhookCa: string;
  /** What `helm install` or `kubectl apply -k` said. */
  readonly applied: string;
  /** Tessera's pods as `helm install --wait` left them, read the moment it returned: name and whether Ready. */
  readonly podsWhenInstalled?: readonly { name: string; ready: boolean }[];
  /** Seconds `helm install --wait` took. */
  readonly installSeconds?: number;
  /** The Tessera image installed. */
  readonly image?: string;
}

export const installMethod = (): 'helm' | 'kustomize' =>
  process.env.TESSERA_NODE_INSTALL === 'kustomize' ? 'kustomize' : 'helm';

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
  // The node agent's DaemonSet placed nowhere, as the chart install does with nodeAgent.nodeSelector: the real node
  // runs the agent as a host process (agent-process.ts), and two agents would fight over the kubelet's socket.
  kubectl([
    '-n',
    AGENT_NAMESPACE,
    'patch',
    'daemonset',
    'tessera-node-agent',
    '--type=merge',
    '-p',
    JSON.stringify({ spec: { template: { spec: { nodeSelector: { 'tessera.io/node-agent-on-the-host': 'true' } } } } }),
  ]);
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
  return { how: 'kustomize', webhookCa, applied, image };
}

/**
 * `helm install` as the README's "Install with Helm" runs it, with the image the node has. The PrometheusRule is off
 * (no Prometheus Operator here). Certificates are the chart's default, self-managed: its pre-install hook Job issues
 * them into the Secrets and its post-install hook sets the caBundle; Helm waits for both hooks and, with --wait, for
 * every pod to be Ready.
 */
export function installWithHelm(cluster: LocalCluster, image: string): Installed {
  const kubectl = kubectlFor(cluster);
  kubectl(['create', 'namespace', 'tessera-system']);
  kubectl(['label', 'namespace', 'tessera-system', 'pod-security.kubernetes.io/enforce=restricted']);
  // The node agent's own namespace, made first as docs/node-agent.md says (helm cannot make a namespace beside the
  // release's). Its DaemonSet is rendered but placed nowhere: the real node runs the same command as a host process
  // (agent-process.ts), since the DaemonSet's hostPaths cannot reach a fake driver tree.
  kubectl(['create', 'namespace', AGENT_NAMESPACE]);
  kubectl(['label', 'namespace', AGENT_NAMESPACE, 'pod-security.kubernetes.io/enforce=privileged']);
  const started = Date.now();
  // Every Deployment becomes Ready, the extender's too (its standby is Ready): --wait returns.
  const applied = helm(cluster, ['install', 'tessera', CHART, ...helmValues(image)]);
  const installSeconds = (Date.now() - started) / 1000;
  const podsWhenInstalled = (
    JSON.parse(kubectl(['-n', 'tessera-system', 'get', 'pods', '-o', 'json'])) as {
      items: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[];
    }
  ).items.map((p) => ({
    name: p.metadata.name,
    ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
  }));
  const caBundle = kubectl([
    'get',
    'validatingwebhookconfiguration',
    'tessera',
    '-o',
    'jsonpath={.webhooks[0].clientConfig.caBundle}',
  ]);
  if (!caBundle)
    throw new Error('helm install left the webhooks without a caBundle (the post-install hook did not run)');
  return {
    how: 'helm',
    webhookCa: Buffer.from(caBundle, 'base64').toString('utf8'),
    applied,
    podsWhenInstalled,
    installSeconds,
    image,
  };
}

/** The values the real node installs with: the local image, pulled never; no PrometheusRule; the agent's DaemonSet
 * placed on no node. `--wait` for every Deployment and DaemonSet. */
export function helmValues(image: string): string[] {
  const [repository, tag] = [image.slice(0, image.lastIndexOf(':')), image.slice(image.lastIndexOf(':') + 1)];
  return [
    '--namespace',
    'tessera-system',
    '--wait',
    '--timeout',
    '10m',
    '--set',
    `image.repository=${repository},image.tag=${tag},image.pullPolicy=Never`,
    '--set',
    'scheduler.image.pullPolicy=Never,monitoring.prometheusRule.enabled=false',
    '--set-string',
    'nodeAgent.nodeSelector.tessera\\.io/node-agent-on-the-host=true',
  ];
}

/** helm as `helm()` runs it, without blocking this process (probes and pod streams keep running meanwhile). */
export function helmAsync(cluster: LocalCluster, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(
      ensureHelm().helm,
      [...args, '--kubeconfig', cluster.kubeconfigFor('admin')],
      { encoding: 'utf8', maxBuffer: 16 << 20 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`helm ${args[0]}: ${stderr.trim() || err.message}`)) : resolve(stdout),
    ),
  );
}

/** Runs helm against the cluster as admin; its output, or an error with what helm said. */
export function helm(cluster: LocalCluster, args: readonly string[]): string {
  try {
    return execFileSync(ensureHelm().helm, [...args, '--kubeconfig', cluster.kubeconfigFor('admin')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`helm ${args[0]}: ${err.stderr?.trim() || err.message}`);
  }
}

/**
 * The chart of an earlier commit (TESSERA_NODE_UPGRADE_FROM, by default HEAD~1: the previous commit, the first parent
 * of a merge), extracted from git into a temporary folder, to upgrade from.
 */
export function previousChart(): { dir: string; commit: string; sameAsThis: boolean } {
  const rev = process.env.TESSERA_NODE_UPGRADE_FROM ?? 'HEAD~1';
  const git = (args: string[]) => execFileSync('git', ['-C', REPO, ...args], { encoding: 'utf8' }).trim();
  const commit = git(['log', '-1', '--format=%h %s', rev]).slice(0, 120);
  const dir = mkdtempSync(join(tmpdir(), 'tessera-previous-chart-'));
  execFileSync('sh', ['-c', `git -C "$1" archive "$2" charts/tessera | tar -x -C "$3"`, 'sh', REPO, rev, dir]);
  const sameAsThis = isUnchanged(rev, git);
  return { dir: join(dir, 'charts', 'tessera'), commit, sameAsThis };
}

function isUnchanged(rev: string, git: (args: string[]) => string): boolean {
  try {
    git(['diff', '--quiet', rev, '--', 'charts/tessera']);
    return true;
  } catch {
    return false;
  }
}
