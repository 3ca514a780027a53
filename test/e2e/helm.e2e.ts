// charts/tessera against a real API server: helm lint; helm template with default values, with cert-manager, with the
// example policy from --set-file, in another namespace with the monitoring extras, each accepted object by object by a
// server-side dry run; bad values refused with the schema's message. Then a real `helm install` (hooks run by hand:
// there is no kubelet here to run the Job's pod), the certificate jobs' own commands run as their service accounts
// (their RBAC is the chart's, checked by the API server's authorizer), `helm upgrade` keeping what the jobs wrote, and
// `helm uninstall`, and a move from the kustomize base to the chart.

import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { startCluster } from '../controlplane/cluster.ts';
import { runCli } from '../fixtures/cli.ts';
import { ensureHelm } from '../helm/build.ts';
import { CHART, parseObjects, type KubeObject } from '../helm/render.ts';
import { BUNDLE_ANNOTATION, sha256 } from '../../cli/certs-kube.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));
const BASE = fileURLToPath(new URL('../../manifests/base', import.meta.url));
const EXAMPLE_POLICY = fileURLToPath(new URL('../../../shared/examples/policy.yaml', import.meta.url));
const NS = 'tessera-system';

t.test('the Helm chart on a real API server', async (t) => {
  const helmBinary = ensureHelm((l) => t.comment(l)).helm;
  const cluster = await startCluster({ log: (l) => t.comment(l) });
  t.teardown(() => cluster.stop());
  const admin = cluster.kubeconfigFor('admin');
  const kubectl = (args: string[], input?: string, kubeconfig = admin) =>
    execFileSync(cluster.binaries.kubectl, ['--kubeconfig', kubeconfig, ...args], {
      input,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  const helm = (args: string[]) => {
    const r = spawnSync(helmBinary, [...args, '--kubeconfig', admin], {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH ?? '',
        HOME: cluster.dir,
        HELM_CONFIG_HOME: join(cluster.dir, 'helm-config'),
        HELM_DATA_HOME: join(cluster.dir, 'helm-data'),
        HELM_CACHE_HOME: join(cluster.dir, 'helm-cache'),
      },
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const ok = (args: string[]) => {
    const r = helm(args);
    if (r.status !== 0) throw new Error(`helm ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  await t.test('helm lint --strict', async (t) => {
    for (const values of [[], ['--set', 'certManager.enabled=true'], ['--set', 'namespace.create=true']]) {
      const r = helm(['lint', '--strict', CHART, ...values]);
      if (r.status !== 0) t.comment(r.stdout + r.stderr);
      t.equal(r.status, 0, `lint ${values.join(' ') || '(defaults)'}`);
      t.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  // The kinds the chart renders beyond Kubernetes' own: the Prometheus Operator's and cert-manager's, as stand-ins.
  for (const crd of ['prometheus-rule-crd.yaml', 'pod-monitor-crd.yaml', 'cert-manager-crds.yaml'])
    kubectl(['apply', '-f', join(FIXTURES, crd)]);
  kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd', '--all']);
  for (const ns of [NS, 'gpu-system'])
    kubectl(
      ['apply', '--server-side', '-f', '-'],
      `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${ns}\n  labels: {pod-security.kubernetes.io/enforce: restricted}\n`,
    );

  await t.test('helm template, dry-run on the server: every object accepted', async (t) => {
    const variants: [string, string[], string, (objects: KubeObject[]) => boolean][] = [
      ['default values', [], NS, (o) => o.some((x) => x.kind === 'CronJob')],
      [
        'cert-manager',
        ['--set', 'certManager.enabled=true'],
        NS,
        (o) => o.filter((x) => x.kind === 'Certificate').length === 3 && !o.some((x) => x.kind === 'CronJob'),
      ],
      [
        'the example policy from --set-file',
        ['--set-file', `policy.files.tenants\\.yaml=${EXAMPLE_POLICY}`],
        NS,
        (o) => Object.keys(o.find((x) => x.metadata.name === 'tessera-policy')!.data).join() === 'tenants.yaml',
      ],
      [
        'another namespace, the Namespace object, monitoring extras, a tenant-only selector',
        [
          '--set',
          'namespace.create=true,monitoring.podMonitor.enabled=true,monitoring.grafanaDashboard.enabled=true',
          '--set',
          'webhook.namespaceSelector.matchExpressions[0].key=tessera.io/tenant,webhook.namespaceSelector.matchExpressions[0].operator=Exists',
          '--set',
          'networkPolicy.extenderFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring',
        ],
        'gpu-system',
        (o) => o.filter((x) => x.kind === 'PodMonitor').length === 2 && o.some((x) => x.kind === 'Namespace'),
      ],
    ];
    // The node agent's objects live in their own namespace, which a server dry run does not create.
    kubectl(
      ['apply', '--server-side', '-f', '-'],
      'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tessera-node-agent\n',
    );
    for (const [name, values, namespace, renders] of variants) {
      const rendered = ok(['template', 'tessera', CHART, '--namespace', namespace, ...values]);
      const objects = parseObjects(rendered);
      t.ok(renders(objects), `${name}: renders what it should`);
      const out = kubectl(
        ['apply', '--server-side', '--dry-run=server', '--field-manager=tessera-e2e', '-f', '-'],
        rendered,
      );
      const applied = out.split('\n').filter((l) => /serverside-applied \(server dry run\)/.test(l));
      if (applied.length !== objects.length) t.comment(out);
      t.equal(applied.length, objects.length, `${name}: all ${objects.length} objects accepted by the API server`);
    }
  });

  await t.test('bad values: helm install stops with the schema’s message', async (t) => {
    const r = helm(['install', 'tessera', CHART, '-n', NS, '--set', 'webhook.failurePolicy=Sometimes']);
    t.not(r.status, 0);
    t.match(r.stderr, /values don't meet the specifications of the schema\(s\)/);
    t.match(r.stderr, /at '\/webhook\/failurePolicy': value must be one of 'Fail', 'Ignore'/);
    const bad = helm(['install', 'tessera', CHART, '-n', NS, '--set-string', 'policy.files.tenants=x']);
    t.match(bad.stderr, /at '\/policy\/files': additional properties 'tenants' not allowed/);
    t.equal(helm(['list', '-n', NS, '-q']).stdout.trim(), '', 'no release was made');
  });

  await t.test('NOTES: the namespace’s Pod Security label is checked on the live cluster', async (t) => {
    kubectl(['create', 'namespace', 'unlabelled']);
    const r = ok(['install', 'tessera', CHART, '-n', 'unlabelled', '--dry-run=server']);
    t.match(r, /NOTE: namespace unlabelled does not enforce the restricted Pod Security Standard/);
    // The chart's default kube-scheduler is 1.37: on another minor (`--kubernetes 1.34`) NOTES says to match it.
    if (cluster.binaries.kubernetesVersion.startsWith('v1.37.'))
      t.notMatch(r, /kube-scheduler v1\.37\.2 on a/, 'the scheduler image matches the cluster (v1.37)');
    else t.match(r, /NOTE: tessera-scheduler runs kube-scheduler v1\.37\.2 on a v1\.\d+/, 'a newer scheduler is named');
    const labelled = ok(['install', 'tessera', CHART, '-n', NS, '--dry-run=server']);
    t.notMatch(labelled, /does not enforce the restricted/);
    t.match(labelled, /certs\s+self-managed: Job tessera-certs-hook at install and upgrade/);
  });

  await t.test('install, the certificate jobs as their service accounts, upgrade, uninstall', async (t) => {
    // There is no kubelet to run the hook Job's pod: install without hooks, apply the hook's service account and RBAC
    // as Helm would, and run the Job's containers' commands with its service account's token.
    ok(['install', 'tessera', CHART, '-n', NS, '--no-hooks']);
    const hook = parseObjects(ok(['template', 'tessera', CHART, '-n', NS, '--show-only', 'templates/certs/hook.yaml']));
    const job = hook.find((o) => o.kind === 'Job')!;
    kubectl(
      ['apply', '-f', '-'],
      hook
        .filter((o) => o.kind !== 'Job')
        .map((o) => JSON.stringify(o))
        .join('\n---\n'),
    );
    const cron = parseObjects(
      ok(['template', 'tessera', CHART, '-n', NS, '--show-only', 'templates/certs/rotation.yaml']),
    ).find((o) => o.kind === 'CronJob')!;
    const kubeconfigOf = (sa: string) => {
      const token = kubectl(['create', 'token', sa, '-n', NS, '--duration=1h']).trim();
      const file = join(cluster.dir, `kubeconfig-${sa}`);
      writeFileSync(
        file,
        [
          'apiVersion: v1',
          'kind: Config',
          `clusters: [{name: c, cluster: {server: "${cluster.server}", insecure-skip-tls-verify: true}}]`,
          `users: [{name: ${sa}, user: {token: ${token}}}]`,
          `contexts: [{name: c, context: {cluster: c, user: ${sa}}}]`,
          'current-context: c',
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      return file;
    };
    const runJob = async (podSpec: any, kubeconfig: string) => {
      const outputs: string[] = [];
      for (const c of podSpec.containers as { name: string; args: string[] }[]) {
        const r = await runCli([...c.args, '--kubeconfig', kubeconfig], { timeoutMs: 60_000 });
        if (r.code !== 0) t.comment(r.stdout + r.stderr);
        t.equal(r.code, 0, `${c.name}: tessera ${c.args.join(' ')}`);
        outputs.push(r.stdout);
      }
      return outputs;
    };
    const hookKubeconfig = kubeconfigOf(job.spec.template.spec.serviceAccountName);
    const [webhookOut, extenderOut] = await runJob(job.spec.template.spec, hookKubeconfig);
    t.match(webhookOut, /issued a CA and a serving certificate for tessera-webhook.tessera-system.svc/);
    t.match(webhookOut, /set the caBundle of MutatingWebhookConfiguration tessera \(mutate.tessera.io\)/);
    t.match(webhookOut, /set the caBundle of ValidatingWebhookConfiguration tessera \(validate.tessera.io\)/);
    t.match(extenderOut, /restarted Deployment tessera-system\/tessera-scheduler/, 'created before its CA');

    const secret = (name: string) =>
      JSON.parse(kubectl(['get', 'secret', name, '-n', NS, '-o', 'json'])) as {
        type: string;
        data: Record<string, string>;
      };
    const served = secret('tessera-webhook-tls');
    t.equal(served.type, 'kubernetes.io/tls');
    t.same(Object.keys(served.data).sort(), ['ca.crt', 'tls.crt', 'tls.key']);
    t.same(Object.keys(secret('tessera-webhook-ca').data).sort(), ['ca-signing.crt', 'ca.key']);
    const caBundle = (kind: string) =>
      (
        JSON.parse(kubectl(['get', kind, 'tessera', '-o', 'json'])) as {
          webhooks: { clientConfig: { caBundle?: string } }[];
        }
      ).webhooks[0]!.clientConfig.caBundle;
    t.equal(caBundle('mutatingwebhookconfiguration'), served.data['ca.crt'], 'the API server trusts the webhook’s CA');
    t.equal(caBundle('validatingwebhookconfiguration'), served.data['ca.crt']);
    const extenderBundle = Buffer.from(secret('tessera-extender-tls').data['ca.crt']!, 'base64').toString();
    const schedulerTemplate = () =>
      JSON.parse(kubectl(['get', 'deployment', 'tessera-scheduler', '-n', NS, '-o', 'json'])).spec.template.metadata;
    t.equal(schedulerTemplate().annotations[BUNDLE_ANNOTATION], sha256(extenderBundle));

    // The CronJob's account: rotates what exists, and may do nothing more.
    const cronKubeconfig = kubeconfigOf(cron.spec.jobTemplate.spec.template.spec.serviceAccountName);
    const again = await runJob(cron.spec.jobTemplate.spec.template.spec, cronKubeconfig);
    t.same(again, ['nothing to rotate\n', 'nothing to rotate\n'], 'the CronJob finds nothing to do');
    const can = (sa: string, ...args: string[]) => {
      try {
        return (
          kubectl(['auth', 'can-i', ...args, '-n', NS, '--as', `system:serviceaccount:${NS}:${sa}`]).trim() === 'yes'
        );
      } catch {
        return false; // `can-i` exits 1 for "no"
      }
    };
    t.ok(can('tessera-certs', 'update', 'secret/tessera-webhook-tls'), 'the CronJob updates its Secrets');
    t.ok(can('tessera-certs', 'get', 'secret/tessera-extender-ca'));
    t.notOk(can('tessera-certs', 'create', 'secrets'), 'but creates none');
    t.notOk(can('tessera-certs', 'get', 'secret/sh.helm.release.v1.tessera.v1'), 'nor reads any other');
    t.notOk(can('tessera-certs', 'list', 'secrets'), 'nor lists them');
    t.ok(can('tessera-certs', 'patch', 'mutatingwebhookconfiguration/tessera'));
    t.notOk(can('tessera-certs', 'patch', 'mutatingwebhookconfiguration/another'), 'only Tessera’s');
    t.ok(can('tessera-certs', 'patch', 'deployment/tessera-scheduler'));
    t.notOk(can('tessera-certs', 'patch', 'deployment/tessera-webhook'), 'only the scheduler restarts');
    t.ok(can('tessera-certs-hook', 'create', 'secrets'), 'the install hook creates them');
    t.notOk(can('tessera-webhook', 'get', 'secret/tessera-webhook-ca'), 'the servers cannot read the CA key');

    // helm upgrade computes a three-way merge: what the jobs wrote (caBundle, the scheduler's record) stays, and a
    // scheduler configuration change rolls the scheduler through its checksum.
    const checksum = schedulerTemplate().annotations['checksum/config'];
    ok([
      'upgrade',
      'tessera',
      CHART,
      '-n',
      NS,
      '--no-hooks',
      '--set',
      'webhook.replicas=3,scheduler.extender.weight=5',
    ]);
    t.equal(caBundle('mutatingwebhookconfiguration'), served.data['ca.crt'], 'upgrade keeps the caBundle');
    t.equal(caBundle('validatingwebhookconfiguration'), served.data['ca.crt']);
    const after = schedulerTemplate().annotations;
    t.equal(after[BUNDLE_ANNOTATION], sha256(extenderBundle), 'and the scheduler’s record of its CA');
    t.not(after['checksum/config'], checksum, 'the changed configuration rolls the scheduler');
    t.equal(
      JSON.parse(kubectl(['get', 'deployment', 'tessera-webhook', '-n', NS, '-o', 'json'])).spec.replicas,
      3,
      'values reach the objects',
    );
    const hookAgain = await runJob(job.spec.template.spec, hookKubeconfig);
    t.same(hookAgain, ['nothing to rotate\n', 'nothing to rotate\n'], 'the upgrade hooks find nothing to do');

    ok(['uninstall', 'tessera', '-n', NS, '--no-hooks']);
    const left = kubectl(['get', 'deploy,cronjob,configmap,service,networkpolicy', '-n', NS, '-o', 'name'])
      .split('\n')
      .filter((l) => l !== '' && l !== 'configmap/kube-root-ca.crt');
    t.same(left, [], 'uninstall removes what the chart made');
    t.throws(() => kubectl(['get', 'mutatingwebhookconfiguration', 'tessera']), 'and the webhook configurations');
    t.same(
      parseAllDocuments(kubectl(['get', 'secrets', '-n', NS, '-o', 'yaml']))[0]!
        .toJS()
        .items.map((s: { metadata: { name: string } }) => s.metadata.name)
        .sort(),
      ['tessera-extender-ca', 'tessera-extender-tls', 'tessera-webhook-ca', 'tessera-webhook-tls'],
      'the certificates the jobs made stay (documented): a reinstall keeps its CA',
    );

    // Moving from the kustomize base, as the README says: certificates issued by hand into directories and created as
    // generic Secrets, the base applied, then the CA's files put into the CA Secrets and `helm install
    // --take-ownership` adopting the base's objects.
    kubectl([
      'delete',
      'secret',
      '-n',
      NS,
      'tessera-webhook-tls',
      'tessera-webhook-ca',
      'tessera-extender-tls',
      'tessera-extender-ca',
    ]);
    for (const c of ['webhook', 'extender']) {
      const dir = join(cluster.dir, `tls-${c}`);
      const issued = await runCli([
        'certs',
        'issue',
        '--dir',
        dir,
        '--name',
        `tessera-${c}`,
        '--dns',
        `tessera-${c}.${NS}.svc`,
      ]);
      t.equal(issued.code, 0, `tessera certs issue --dir for the ${c}`);
      const from = (files: string[]) => files.map((f) => `--from-file=${join(dir, f)}`);
      kubectl(['-n', NS, 'create', 'secret', 'generic', `tessera-${c}-tls`, ...from(['tls.crt', 'tls.key', 'ca.crt'])]);
      kubectl(['-n', NS, 'create', 'secret', 'generic', `tessera-${c}-ca`, ...from(['ca-signing.crt', 'ca.key'])]);
    }
    const byHand = secret('tessera-webhook-tls');
    kubectl(['apply', '--server-side', '--field-manager=kustomize-user', '-k', BASE]);
    ok(['install', 'tessera', CHART, '-n', NS, '--no-hooks', '--take-ownership']);
    const adopted = JSON.parse(kubectl(['get', 'deployment', 'tessera-webhook', '-n', NS, '-o', 'json'])).metadata;
    t.equal(adopted.labels['app.kubernetes.io/managed-by'], 'Helm', 'the base’s Deployment is now the release’s');
    t.equal(adopted.annotations['meta.helm.sh/release-name'], 'tessera');
    const [webhookAdopted] = await runJob(job.spec.template.spec, hookKubeconfig);
    t.match(webhookAdopted, /nothing to rotate/, 'the certificates issued by hand are kept');
    t.match(webhookAdopted, /set the caBundle of MutatingWebhookConfiguration tessera/);
    t.equal(caBundle('validatingwebhookconfiguration'), byHand.data['ca.crt'], 'their CA trusted');
    t.equal(secret('tessera-webhook-tls').type, 'Opaque', 'the Secret left as it was made');
  });
});
