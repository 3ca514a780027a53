// charts/tessera with default values renders the objects of the kustomize base (manifests/base), object by object,
// apart from the differences listed in ALLOWED below, each deliberate and documented in docs/install.md. Then what each
// group of values changes, and that bad values fail with the schema's message.
// Needs helm and kubectl (for kustomize), built into .cache/ by `npm run build:helm` and `npm run build:cluster`; a cold
// cache builds them here first (minutes).

import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCa } from '../../../certs/authority.ts';
import { parse } from 'yaml';
import { compilePolicy } from '../../../core/policy/compile.ts';
import { STRATEGIES } from '../../../core/scoring/strategy-registry.ts';
import {
  byKey,
  CHART,
  helm,
  keyOf,
  parseObjects,
  renderBase,
  renderChart,
  type KubeObject,
} from '../../helm/render.ts';

t.setTimeout(20 * 60_000);

const NS = 'tessera-system';
const read = (path: string) => readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');
const pkg = JSON.parse(read('package.json')) as { version: string };
const chartYaml = parse(read('charts/tessera/Chart.yaml')) as { version: string; appVersion: string };

/**
 * Every way the default render may differ from the base. Anything else that differs fails the test.
 */
const ALLOWED = {
  /** Labels Helm's conventions add to every object's metadata (never to selectors or pod templates). */
  helmLabels: {
    'app.kubernetes.io/managed-by': 'Helm',
    'app.kubernetes.io/instance': 'tessera',
    'app.kubernetes.io/version': pkg.version,
    'helm.sh/chart': `tessera-${chartYaml.version}`,
  },
  /** Only with namespace.create=true: `helm install` needs the release namespace to exist before it starts. */
  notRenderedByDefault: ['v1/Namespace//tessera-node-agent', `v1/Namespace//${NS}`],
  /** Self-managed certificates (the base leaves them to `tessera certs issue` by hand). */
  chartOnly: [
    `v1/ServiceAccount/${NS}/tessera-certs`,
    `rbac.authorization.k8s.io/v1/Role/${NS}/tessera-certs`,
    `rbac.authorization.k8s.io/v1/RoleBinding/${NS}/tessera-certs`,
    'rbac.authorization.k8s.io/v1/ClusterRole//tessera-certs',
    'rbac.authorization.k8s.io/v1/ClusterRoleBinding//tessera-certs',
    `batch/v1/CronJob/${NS}/tessera-certs`,
    `v1/ServiceAccount/${NS}/tessera-certs-hook`,
    `rbac.authorization.k8s.io/v1/Role/${NS}/tessera-certs-hook`,
    `rbac.authorization.k8s.io/v1/RoleBinding/${NS}/tessera-certs-hook`,
    'rbac.authorization.k8s.io/v1/ClusterRole//tessera-certs-hook',
    'rbac.authorization.k8s.io/v1/ClusterRoleBinding//tessera-certs-hook',
    `batch/v1/Job/${NS}/tessera-certs-hook`,
  ],
  /**
   * The base's configMapGenerator names the policy ConfigMap tessera-policy-<content hash> (a change rolls the pods);
   * the chart keeps tessera-policy, so that the servers hot-reload a change and keep the last good policy if it is bad.
   */
  policyConfigMap: 'tessera-policy',
  /** tessera-scheduler reads its configuration only at start: a checksum in its pod template rolls it on a change. */
  schedulerChecksum: 'checksum/config',
  /** The scheduler configuration is compared as parsed YAML (the base's text carries more comments). */
  schedulerConfigAsYaml: `v1/ConfigMap/${NS}/tessera-scheduler-config`,
};

function stripHelmLabels(t: Test, o: KubeObject): KubeObject {
  const labels = { ...(o.metadata.labels ?? {}) };
  for (const [k, v] of Object.entries(ALLOWED.helmLabels)) {
    if (labels[k] !== v) t.fail(`${keyOf(o)}: label ${k}=${v} expected, found ${labels[k]}`);
    delete labels[k];
  }
  return { ...o, metadata: { ...o.metadata, labels } };
}

/** The base with its generated policy ConfigMap's name replaced by the chart's (ConfigMap and volumes). */
function normalizedBase(t: Test, base: KubeObject[]): KubeObject[] {
  const generated = base.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('tessera-policy'))!;
  t.match(generated.metadata.name, /^tessera-policy-[a-z0-9]{10}$/, 'the base names its policy ConfigMap by content');
  const text = JSON.stringify(base).replaceAll(`"${generated.metadata.name}"`, `"${ALLOWED.policyConfigMap}"`);
  return JSON.parse(text) as KubeObject[];
}

function normalizedChartObject(t: Test, o: KubeObject): KubeObject {
  const c = structuredClone(stripHelmLabels(t, o));
  if (c.kind === 'Deployment' && c.metadata.name === 'tessera-scheduler') {
    const annotations = c.spec.template.metadata.annotations as Record<string, string>;
    t.match(annotations[ALLOWED.schedulerChecksum], /^[a-f0-9]{64}$/, 'the scheduler pods carry the config checksum');
    delete annotations[ALLOWED.schedulerChecksum];
    if (Object.keys(annotations).length === 0) delete c.spec.template.metadata.annotations;
  }
  return c;
}

const configOf = (objects: Map<string, KubeObject>) =>
  parse(objects.get(ALLOWED.schedulerConfigAsYaml)!.data['config.yaml']) as Record<string, any>;

t.test('Chart.yaml: appVersion is the package version', async (t) => {
  t.equal(chartYaml.appVersion, pkg.version);
});

t.test('the chart with default values holds the objects of the kustomize base', async (t) => {
  const base = byKey(normalizedBase(t, renderBase()));
  const chartObjects = renderChart();
  const chart = byKey(chartObjects);
  const onlyInBase = [...base.keys()].filter((k) => !chart.has(k));
  const onlyInChart = [...chart.keys()].filter((k) => !base.has(k));
  t.same(onlyInBase, ALLOWED.notRenderedByDefault, 'the base objects the chart does not render by default');
  t.same(onlyInChart.sort(), [...ALLOWED.chartOnly].sort(), 'the objects only the chart renders');
  for (const [key, b] of base) {
    const c = chart.get(key);
    if (!c) continue;
    const normalized = normalizedChartObject(t, c);
    if (key === ALLOWED.schedulerConfigAsYaml) {
      t.same(configOf(chart), configOf(base), `${key}: the same KubeSchedulerConfiguration`);
      t.same({ ...normalized, data: {} }, { ...b, data: {} }, `${key}: the same ConfigMap otherwise`);
      continue;
    }
    t.same(normalized, b, key);
  }
  // Every chart object carries Helm's labels, the chart-only ones included.
  for (const key of ALLOWED.chartOnly) stripHelmLabels(t, chart.get(key)!);

  const withNamespace = byKey(renderChart(['--set', 'namespace.create=true']));
  const ns = withNamespace.get(`v1/Namespace//${NS}`);
  t.ok(ns, 'namespace.create=true renders the Namespace');
  if (ns) t.same(stripHelmLabels(t, ns), base.get(`v1/Namespace//${NS}`), 'as the base has it (restricted PSS)');
});

t.test('the chart ships copies of the base policy, the rules and the dashboard, kept equal', async (t) => {
  t.equal(read('charts/tessera/files/policy.yaml'), read('manifests/base/policy.yaml'), 'edit both');
  t.equal(read('charts/tessera/files/tessera.rules.yml'), read('manifests/monitoring/tessera.rules.yml'), 'edit both');
  t.equal(
    read('charts/tessera/files/grafana-dashboard.json'),
    read('manifests/monitoring/grafana-dashboard.json'),
    'edit both',
  );
  const rule = byKey(renderChart()).get(`monitoring.coreos.com/v1/PrometheusRule/${NS}/tessera-chargeback`)!;
  t.same(rule.spec.groups, (parse(read('manifests/monitoring/tessera.rules.yml')) as { groups: unknown[] }).groups);
  const off = renderChart(['--set', 'monitoring.prometheusRule.enabled=false']);
  t.notOk(
    off.some((o) => o.kind === 'PrometheusRule'),
    'monitoring.prometheusRule.enabled=false leaves it out',
  );
  const labelled = renderChart(['--set', 'monitoring.prometheusRule.labels.release=kube-prometheus-stack']);
  t.equal(
    labelled.find((o) => o.kind === 'PrometheusRule')!.metadata.labels!.release,
    'kube-prometheus-stack',
    'with the labels a Prometheus ruleSelector matches',
  );
  const dashboard = renderChart(['--set', 'monitoring.grafanaDashboard.enabled=true']).find(
    (o) => o.metadata.name === 'tessera-grafana-dashboard',
  )!;
  t.equal(dashboard.metadata.labels!.grafana_dashboard, '1');
  t.same(JSON.parse(dashboard.data['tessera.json']), JSON.parse(read('manifests/monitoring/grafana-dashboard.json')));
});

const policyData = (objects: KubeObject[], name = 'tessera-policy') =>
  objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name)?.data as Record<string, string> | undefined;

const volumesOf = (objects: KubeObject[], deployment: string) =>
  objects.find((o) => o.kind === 'Deployment' && o.metadata.name === deployment)!.spec.template.spec.volumes as {
    name: string;
    configMap?: { name: string };
  }[];

t.test('policy from files (--set-file) or from a ConfigMap of yours', async (t) => {
  const example = fileURLToPath(new URL('../../../../shared/examples/policy.yaml', import.meta.url));
  const text = readFileSync(example, 'utf8');
  const objects = renderChart(['--set-file', `policy.files.tenants\\.yaml=${example}`]);
  const data = policyData(objects)!;
  t.same(Object.keys(data), ['tenants.yaml'], 'the file given replaces the example policy, not merged into it');
  t.equal(data['tenants.yaml'], text, 'byte for byte');
  const compiled = compilePolicy(Object.entries(data).map(([name, text]) => ({ name, text })));
  t.ok(compiled.ok, 'and it compiles as the servers compile it');

  const dir = mkdtempSync(join(tmpdir(), 'tessera-chart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'extra.json'), '{"apiVersion": "tessera.io/v1alpha1"}\n');
  const two = policyData(
    renderChart([
      '--set-file',
      `policy.files.tenants\\.yaml=${example}`,
      '--set-file',
      `policy.files.extra\\.json=${dir}/extra.json`,
    ]),
  )!;
  t.same(Object.keys(two).sort(), ['extra.json', 'tenants.yaml'], 'several files, YAML or JSON');

  const defaults = policyData(renderChart())!;
  t.same(Object.keys(defaults), ['policy.yaml']);
  t.ok(compilePolicy([{ name: 'policy.yaml', text: defaults['policy.yaml']! }]).ok, 'the default policy compiles');

  const mine = renderChart(['--set', 'policy.existingConfigMap=acme-gpu-policy']);
  t.equal(policyData(mine), undefined, 'existingConfigMap: the chart makes no policy ConfigMap');
  for (const d of ['tessera-webhook', 'tessera-extender'])
    t.same(
      volumesOf(mine, d).find((v) => v.name === 'policy')!.configMap,
      { name: 'acme-gpu-policy' },
      `${d} mounts the ConfigMap named`,
    );

  const both = helm([
    'template',
    't',
    CHART,
    '--set',
    'policy.existingConfigMap=x',
    '--set-file',
    `policy.files.a\\.yaml=${example}`,
  ]);
  t.not(both.status, 0);
  t.match(both.stderr, /policy.files and policy.existingConfigMap exclude each other/);
});

t.test('each component takes its replicas, resources, image, placement, log level and extra args', async (t) => {
  const objects = byKey(
    renderChart([
      '--set',
      'image.tag=1.2.3,webhook.replicas=3,webhook.logLevel=debug,webhook.auditInterval=30',
      '--set',
      'webhook.resources.requests.cpu=1,webhook.nodeSelector.pool=system,webhook.extraArgs[0]=--host=::',
      '--set',
      'webhook.systemUsers[0]=system:serviceaccount:ops:gitops',
      '--set',
      'extender.image.repository=mirror.example/tessera,extender.image.digest=sha256:' + 'a'.repeat(64),
      '--set',
      'extender.strategy=fgd,extender.podAntiAffinity=required,extender.tolerations[0].operator=Exists',
      '--set',
      'scheduler.image.tag=v1.36.4,scheduler.verbosity=4,scheduler.replicas=1,scheduler.extraArgs[0]=--v=3',
      '--set',
      'webhook.podAntiAffinity=none,scheduler.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=cp',
      '--set',
      'scheduler.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists',
    ]),
  );
  const dep = (name: string) => objects.get(`apps/v1/Deployment/${NS}/${name}`)!;
  const spec = (name: string) => dep(name).spec.template.spec;
  const webhook = spec('tessera-webhook').containers[0];
  t.equal(dep('tessera-webhook').spec.replicas, 3);
  t.equal(webhook.image, 'registry.example/tessera:1.2.3');
  t.same(webhook.args.slice(7), [
    '--system-user=system:serviceaccount:tessera-system:tessera-extender',
    '--quota-namespace=tessera-system',
    '--system-user=system:serviceaccount:ops:gitops',
    '--log-level=debug',
    '--audit-interval=30',
    '--host=::',
  ]);
  t.equal(webhook.resources.requests.cpu, 1);
  t.same(spec('tessera-webhook').nodeSelector, { pool: 'system' });
  t.equal(spec('tessera-webhook').affinity, undefined, 'podAntiAffinity: none');
  const extender = spec('tessera-extender');
  t.equal(extender.containers[0].image, `mirror.example/tessera@sha256:${'a'.repeat(64)}`);
  t.ok(extender.containers[0].args.includes('--strategy=fgd'));
  t.ok(extender.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution, 'required anti-affinity');
  t.same(extender.tolerations, [{ operator: 'Exists' }]);
  const scheduler = spec('tessera-scheduler');
  t.equal(dep('tessera-scheduler').spec.replicas, 1);
  t.equal(scheduler.containers[0].image, 'registry.k8s.io/kube-scheduler:v1.36.4');
  t.same(scheduler.containers[0].command, [
    'kube-scheduler',
    '--config=/etc/tessera-scheduler/config.yaml',
    '--v=4',
    '--v=3',
  ]);
  t.ok(scheduler.affinity.nodeAffinity, 'a whole affinity of its own');
  const certs = objects.get(`batch/v1/CronJob/${NS}/tessera-certs`)!;
  t.equal(
    certs.spec.jobTemplate.spec.template.spec.containers[0].image,
    'registry.example/tessera:1.2.3',
    'the certificate jobs run the global image',
  );
  t.same(
    Object.keys(STRATEGIES).sort(),
    (JSON.parse(read('charts/tessera/values.schema.json')).properties.extender.properties.strategy.enum as string[])
      .filter((s) => s !== '')
      .sort(),
    "the schema's strategies are the extender's",
  );
});

t.test('the scheduler configuration knobs, and a change rolls tessera-scheduler', async (t) => {
  const defaults = byKey(renderChart());
  const changed = byKey(
    renderChart([
      '--set',
      'scheduler.percentageOfNodesToScore=50,scheduler.extender.weight=3,scheduler.extender.httpTimeout=5s',
      '--set',
      'scheduler.extender.ignorable=true,scheduler.resourceScores.enabled=true,scheduler.resourceScores.scoringStrategy.type=LeastAllocated',
    ]),
  );
  const config = configOf(changed);
  t.equal(config.percentageOfNodesToScore, 50);
  t.equal(configOf(defaults).percentageOfNodesToScore, undefined, 'unset by default (adaptive)');
  t.match(config.extenders[0], { weight: 3, httpTimeout: '5s', ignorable: true });
  t.equal(config.profiles[0].pluginConfig[0].args.scoringStrategy.type, 'LeastAllocated');
  t.equal(config.profiles[0].plugins, undefined, 'resource scores back on');
  t.same(
    configOf(defaults).profiles[0].plugins.score.disabled.map((d: { name: string }) => d.name),
    ['NodeResourcesFit', 'NodeResourcesBalancedAllocation'],
    'resource scores off by default',
  );
  t.equal(configOf(defaults).profiles[0].pluginConfig, undefined, 'no pluginConfig by default');
  const checksum = (m: Map<string, KubeObject>) =>
    m.get(`apps/v1/Deployment/${NS}/tessera-scheduler`)!.spec.template.metadata.annotations['checksum/config'];
  t.not(checksum(changed), checksum(defaults), 'the pod template changes with the configuration');
  const rendered = changed.get(ALLOWED.schedulerConfigAsYaml)!.data['config.yaml'] as string;
  t.equal(
    checksum(changed),
    createHash('sha256').update(rendered.replace(/\n$/, '')).digest('hex'),
    'the checksum is of the rendered configuration',
  );
});

t.test('webhook registration: failurePolicy, timeout, namespaces', async (t) => {
  const objects = renderChart(
    [
      '--set',
      'webhook.failurePolicy=Ignore,webhook.timeoutSeconds=10,webhook.excludeNamespaces={kube-public,monitoring}',
      '--set',
      'webhook.namespaceSelector.matchExpressions[0].key=tessera.io/tenant,webhook.namespaceSelector.matchExpressions[0].operator=Exists',
      '--set',
      'webhook.namespaceSelector.matchLabels.gpu=yes',
    ],
    'gpu-system',
  );
  for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
    const w = objects.find((o) => o.kind === kind)!.webhooks[0];
    t.equal(w.failurePolicy, 'Ignore', kind);
    t.equal(w.timeoutSeconds, 10);
    t.same(w.namespaceSelector, {
      matchLabels: { gpu: 'yes' },
      matchExpressions: [
        {
          key: 'kubernetes.io/metadata.name',
          operator: 'NotIn',
          values: ['kube-system', 'kube-public', 'monitoring', 'gpu-system', 'tessera-node-agent'],
        },
        { key: 'tessera.io/tenant', operator: 'Exists' },
      ],
    });
    t.equal(w.clientConfig.service.namespace, 'gpu-system');
  }
});

t.test('another release namespace reaches everything that names it', async (t) => {
  const objects = renderChart([], 'gpu-system');
  const namespaced = objects.filter((o) => o.metadata.namespace !== undefined);
  t.same(
    [...new Set(namespaced.map((o) => o.metadata.namespace))].sort(),
    ['gpu-system', 'kube-system', 'tessera-node-agent'],
    'one RoleBinding in kube-system (the scheduler reads the authentication ConfigMap), the node agent in its own namespace, the rest in the release namespace',
  );
  const text = JSON.stringify(objects);
  t.notMatch(text, /tessera-system/, 'no object names tessera-system');
  const config = parse(objects.find((o) => o.metadata.name === 'tessera-scheduler-config')!.data['config.yaml']);
  t.equal(config.extenders[0].urlPrefix, 'https://tessera-extender.gpu-system.svc:8443/scheduler');
  t.equal(config.extenders[0].tlsConfig.serverName, 'tessera-extender.gpu-system.svc');
  t.equal(config.leaderElection.resourceNamespace, 'gpu-system');
  const webhookArgs = objects.find((o) => o.metadata.name === 'tessera-webhook' && o.kind === 'Deployment')!.spec
    .template.spec.containers[0].args as string[];
  t.ok(webhookArgs.includes('--system-user=system:serviceaccount:gpu-system:tessera-extender'));
});

t.test('self-managed certificates: least privilege, issue at install, rotate on a schedule', async (t) => {
  const objects = byKey(renderChart());
  const role = objects.get(`rbac.authorization.k8s.io/v1/Role/${NS}/tessera-certs`)!;
  const secrets = ['tessera-webhook-tls', 'tessera-webhook-ca', 'tessera-extender-tls', 'tessera-extender-ca'];
  t.same(role.rules, [
    { apiGroups: [''], resources: ['secrets'], resourceNames: secrets, verbs: ['get', 'update'] },
    { apiGroups: ['apps'], resources: ['deployments'], resourceNames: ['tessera-scheduler'], verbs: ['get', 'patch'] },
  ]);
  const hookRole = objects.get(`rbac.authorization.k8s.io/v1/Role/${NS}/tessera-certs-hook`)!;
  t.same(hookRole.rules, [
    role.rules[0],
    { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
    role.rules[1],
  ]);
  const clusterRole = {
    apiGroups: ['admissionregistration.k8s.io'],
    resources: ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'],
    resourceNames: ['tessera'],
    verbs: ['get', 'patch'],
  };
  t.same(objects.get('rbac.authorization.k8s.io/v1/ClusterRole//tessera-certs')!.rules, [clusterRole]);
  t.same(objects.get('rbac.authorization.k8s.io/v1/ClusterRole//tessera-certs-hook')!.rules, [clusterRole]);
  const hook = objects.get(`batch/v1/Job/${NS}/tessera-certs-hook`)!;
  t.equal(hook.metadata.annotations!['helm.sh/hook'], 'pre-install,pre-upgrade,post-install,post-upgrade');
  for (const name of ['ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding']) {
    const o = [...objects.values()].find((x) => x.kind === name && x.metadata.name === 'tessera-certs-hook')!;
    t.equal(Number(o.metadata.annotations!['helm.sh/hook-weight']), -10, `${name} exists before the hook Job`);
  }
  const args = (spec: any) => spec.containers.map((c: { args: string[] }) => c.args);
  const hookArgs = args(hook.spec.template.spec);
  const cron = objects.get(`batch/v1/CronJob/${NS}/tessera-certs`)!;
  const cronArgs = args(cron.spec.jobTemplate.spec.template.spec);
  t.same(hookArgs[0], [
    'certs',
    'rotate',
    `--secret=${NS}/tessera-webhook-tls`,
    '--ca-secret=tessera-webhook-ca',
    '--name=tessera-webhook',
    `--dns=tessera-webhook.${NS}.svc`,
    '--issue-if-missing',
    '--webhook-configuration=tessera',
  ]);
  t.same(hookArgs[1], [
    'certs',
    'rotate',
    `--secret=${NS}/tessera-extender-tls`,
    '--ca-secret=tessera-extender-ca',
    '--name=tessera-extender',
    `--dns=tessera-extender.${NS}.svc`,
    '--issue-if-missing',
    '--restart-deployment=tessera-scheduler',
  ]);
  t.same(
    cronArgs,
    hookArgs.map((a: string[]) => a.filter((x) => x !== '--issue-if-missing')),
    'the CronJob rotates what exists and never issues (it may not create Secrets)',
  );
  t.equal(hook.spec.template.spec.serviceAccountName, 'tessera-certs-hook');
  t.equal(cron.spec.jobTemplate.spec.template.spec.serviceAccountName, 'tessera-certs');
  const webhook = objects.get(`admissionregistration.k8s.io/v1/MutatingWebhookConfiguration//tessera`)!;
  t.equal(webhook.webhooks[0].clientConfig.caBundle, undefined, 'the caBundle is the jobs’ (Helm never resets it)');
});

t.test('cert-manager: a self-signed CA chain, Certificates for both Services, the CA injected', async (t) => {
  const objects = byKey(renderChart(['--set', 'certManager.enabled=true']));
  const keys = [...objects.keys()];
  t.notOk(
    keys.some((k) => k.includes('tessera-certs')),
    'no certificate Job, CronJob or their RBAC',
  );
  const cm = (kind: string, name: string) => objects.get(`cert-manager.io/v1/${kind}/${NS}/${name}`);
  t.same(cm('Issuer', 'tessera-selfsigned')?.spec, { selfSigned: {} });
  t.match(cm('Certificate', 'tessera-ca')?.spec, {
    isCA: true,
    secretName: 'tessera-ca',
    issuerRef: { name: 'tessera-selfsigned', kind: 'Issuer' },
  });
  t.equal(
    cm('Certificate', 'tessera-ca')?.spec.privateKey.rotationPolicy,
    'Never',
    'the CA keeps its key when renewed: leaves signed before and after verify against either copy',
  );
  t.same(cm('Issuer', 'tessera-ca')?.spec, { ca: { secretName: 'tessera-ca' } });
  for (const c of ['webhook', 'extender'])
    t.match(cm('Certificate', `tessera-${c}`)?.spec, {
      secretName: `tessera-${c}-tls`,
      dnsNames: [`tessera-${c}.${NS}.svc`],
      issuerRef: { name: 'tessera-ca', kind: 'Issuer', group: 'cert-manager.io' },
    });
  for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'])
    t.equal(
      objects.get(`admissionregistration.k8s.io/v1/${kind}//tessera`)!.metadata.annotations![
        'cert-manager.io/inject-ca-from'
      ],
      `${NS}/tessera-webhook`,
      kind,
    );
  const config = configOf(objects);
  t.equal(config.extenders[0].tlsConfig.serverName, 'tessera-extender.tessera-system.svc', 'the name it is issued for');

  const own = byKey(
    renderChart([
      '--set',
      'certManager.enabled=true,certManager.issuerRef.name=corp-ca,certManager.issuerRef.kind=ClusterIssuer',
    ]),
  );
  t.notOk(own.has(`cert-manager.io/v1/Issuer/${NS}/tessera-ca`), 'an issuer of yours: no chart CA');
  t.same(own.get(`cert-manager.io/v1/Certificate/${NS}/tessera-webhook`)!.spec.issuerRef, {
    name: 'corp-ca',
    kind: 'ClusterIssuer',
  });
});

t.test('certificates of your own: the caBundle from values', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-chart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pem = createCa({ commonName: 'corp-ca' }).certPem;
  writeFileSync(join(dir, 'ca.crt'), pem);
  const objects = renderChart([
    '--set',
    'certs.selfManaged.enabled=false',
    '--set-file',
    `certs.caBundle=${dir}/ca.crt`,
  ]);
  t.notOk(
    objects.some((o) => o.metadata.name.startsWith('tessera-certs') || o.apiVersion.startsWith('cert-manager')),
    'no jobs, no cert-manager objects',
  );
  for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'])
    t.equal(
      Buffer.from(objects.find((o) => o.kind === kind)!.webhooks[0].clientConfig.caBundle, 'base64').toString(),
      pem,
      kind,
    );
});

t.test(
  'fleet values: the extender publishes capacity and answers gpu-fit, with the RBAC the component has',
  async (t) => {
    const fleetArgs = ['--set', 'fleet.clusterName=eu-central,fleet.region=eu-central'];
    const on = byKey(renderChart([...fleetArgs, '--set', 'fleet.publishCapacity=true,fleet.gpuFitCheck=true']));
    const args = on.get(`apps/v1/Deployment/${NS}/tessera-extender`)!.spec.template.spec.containers[0].args as string[];
    for (const a of [
      '--fleet-cluster=eu-central',
      '--fleet-region=eu-central',
      `--fleet-namespace=${NS}`,
      '--publish-capacity',
      '--gpu-fit-check',
    ])
      t.ok(args.includes(a), `extender runs with ${a}`);
    const component = parseObjects(read('manifests/components/fleet-worker/rbac.yaml'));
    for (const o of component) {
      const chart = on.get(keyOf(o));
      t.ok(chart, `${keyOf(o)} rendered`);
      t.same(chart?.rules ?? chart?.roleRef, o.rules ?? o.roleRef, `${keyOf(o)} grants what the component grants`);
      if (o.subjects) t.same(chart?.subjects, o.subjects, `${keyOf(o)} binds the same subjects`);
    }
    const off = byKey(renderChart());
    for (const o of component) t.notOk(off.has(keyOf(o)), `${keyOf(o)} is not rendered by default`);
    t.notOk(
      (off.get(`apps/v1/Deployment/${NS}/tessera-extender`)!.spec.template.spec.containers[0].args as string[]).some(
        (a) => a.startsWith('--fleet'),
      ),
      'no fleet argument by default',
    );
    const onlyGpuFit = byKey(renderChart([...fleetArgs, '--set', 'fleet.gpuFitCheck=true']));
    t.ok(onlyGpuFit.has('rbac.authorization.k8s.io/v1/ClusterRole//tessera-gpu-fit'));
    t.notOk(
      onlyGpuFit.has(`rbac.authorization.k8s.io/v1/Role/${NS}/tessera-fleet-capacity`),
      'each duty brings its own',
    );
    const unnamed = helm(['template', 't', CHART, '--set', 'fleet.gpuFitCheck=true']);
    t.not(unnamed.status, 0);
    t.match(unnamed.stderr, /fleet.clusterName is required/);
  },
);

t.test(
  'fleet.manager: the dispatcher with its RBAC, and the webhook mutates Jobs; nothing of it by default',
  async (t) => {
    const on = byKey(renderChart(['--set', 'fleet.manager.enabled=true,fleet.manager.kueueNamespace=kueue']));
    const deployment = on.get(`apps/v1/Deployment/${NS}/tessera-fleet-dispatcher`)!;
    t.ok(deployment, 'the dispatcher Deployment');
    t.equal(deployment.spec.replicas, 1, 'one writer of nominations');
    t.equal(deployment.spec.strategy.type, 'Recreate', 'never two during a rollout');
    const args = deployment.spec.template.spec.containers[0].args as string[];
    for (const a of ['dispatcher', '--policy-dir=/etc/tessera/policy', '--kueue-namespace=kueue', '--interval=2'])
      t.ok(args.includes(a), `runs with ${a}`);
    const cluster = on.get('rbac.authorization.k8s.io/v1/ClusterRole//tessera-fleet-dispatcher')!;
    t.same(
      cluster.rules.find((r: { resources: string[] }) => r.resources.includes('workloads/status')).verbs,
      ['patch'],
      'writes nominatedClusterNames',
    );
    const secrets = on.get('rbac.authorization.k8s.io/v1/Role/kueue/tessera-fleet-dispatcher');
    t.same(
      secrets?.rules,
      [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }],
      "reads the workers' kubeconfigs",
    );
    t.equal(
      on.get('rbac.authorization.k8s.io/v1/RoleBinding/kueue/tessera-fleet-dispatcher')?.subjects[0].name,
      'tessera-fleet-dispatcher',
    );
    const hook = on
      .get('admissionregistration.k8s.io/v1/MutatingWebhookConfiguration//tessera')!
      .webhooks.find((w: { name: string }) => w.name === 'mutate-job.tessera.io');
    t.same(hook?.rules, [
      { apiGroups: ['batch'], apiVersions: ['v1'], operations: ['CREATE'], resources: ['jobs'], scope: 'Namespaced' },
    ]);
    t.equal(hook?.clientConfig.service.path, '/mutate-job');
    const off = byKey(renderChart());
    t.notOk(off.has(`apps/v1/Deployment/${NS}/tessera-fleet-dispatcher`), 'no dispatcher by default');
    t.notOk(
      off
        .get('admissionregistration.k8s.io/v1/MutatingWebhookConfiguration//tessera')!
        .webhooks.some((w: { name: string }) => w.name === 'mutate-job.tessera.io'),
      'no Job webhook by default',
    );
  },
);

t.test('bad values fail with the schema’s message, before anything is rendered', async (t) => {
  const cases: [string[], RegExp][] = [
    [
      ['--set', 'webhook.failurePolicy=Sometimes'],
      /at '\/webhook\/failurePolicy': value must be one of 'Fail', 'Ignore'/,
    ],
    [['--set', 'webhook.replica=3'], /at '\/webhook': additional properties 'replica' not allowed/],
    [['--set', 'extender.strategy=fastest'], /at '\/extender\/strategy': value must be one of/],
    [['--set', 'webhook.timeoutSeconds=60'], /at '\/webhook\/timeoutSeconds': maximum: got 60, want 30/],
    [
      ['--set', 'scheduler.extender.httpTimeout=two'],
      /at '\/scheduler\/extender\/httpTimeout': 'two' does not match pattern/,
    ],
    [
      ['--set', 'scheduler.percentageOfNodesToScore=150'],
      /at '\/scheduler\/percentageOfNodesToScore': maximum: got 150, want 100/,
    ],
    [['--set-string', 'policy.files.tenants=x'], /at '\/policy\/files': additional properties 'tenants' not allowed/],
    [['--set', 'image.digest=latest'], /at '\/image\/digest': 'latest' does not match pattern/],
    [['--set', 'certs.caBundle=LS0tLS1CRUdJTg=='], /at '\/certs\/caBundle'/],
    [['--set', 'certManager.enabled=true,certManager.issuerRef.kind=Issuer'], /certManager.issuerRef needs a name/],
    [['--set', 'scheduler.leaderElect=false'], /scheduler.leaderElect: false with more than one scheduler replica/],
  ];
  for (const [args, message] of cases) {
    const r = helm(['template', 't', CHART, ...args]);
    t.not(r.status, 0, args.join(' '));
    t.match(r.stderr, message, args.join(' '));
    t.equal(r.stdout, '', 'nothing rendered');
  }
});

t.test('docs/install.md documents every value', async (t) => {
  const readme = read('docs/install.md');
  const start = readme.indexOf('## Install with Helm');
  t.ok(start >= 0, 'the section exists');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const perComponent = section.slice(section.indexOf('Each of `webhook`, `extender` and `scheduler` also takes'));
  // Maps whose content is Kubernetes' or the user's own (resources, labels, affinity...) are one value each.
  const opaque = new Set(['resources', 'scoringStrategy', 'labels', 'podAnnotations', 'podLabels', 'nodeSelector']);
  for (const k of ['affinity', 'annotations', 'commonLabels', 'issuerRef', 'privateKey', 'namespaceSelector'])
    opaque.add(k);
  const leaves: string[] = [];
  const walk = (o: Record<string, unknown>, path: string) => {
    for (const [k, v] of Object.entries(o)) {
      const p = path ? `${path}.${k}` : k;
      const isMap = v !== null && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0;
      if (isMap && !(opaque.has(k) && path !== '')) walk(v as Record<string, unknown>, p);
      else leaves.push(p);
    }
  };
  walk(parse(read('charts/tessera/values.yaml')) as Record<string, unknown>, '');
  // The node agent's values are documented with the agent.
  const agentDoc = read('docs/node-agent.md');
  t.ok(leaves.length > 80, `${leaves.length} values`);
  for (const path of leaves) {
    const [component, ...rest] = path.split('.');
    const documented =
      section.includes(`\`${path}\``) ||
      // `a.b`, `.c` lists siblings of one group in a row
      (section.includes(`.${path.split('.').at(-1)}\``) &&
        section.includes(`\`${path.split('.').slice(0, -1).join('.')}.`)) ||
      (['webhook', 'extender', 'scheduler'].includes(component!) && perComponent.includes(`\`${rest.join('.')}\``)) ||
      (component === 'nodeAgent' && agentDoc.includes(`\`${path}\``));
    t.ok(documented, `${path} is in docs/install.md's (or docs/node-agent.md's) values tables`);
  }
});
