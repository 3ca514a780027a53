// Tessera's webhooks for KubeVirt's VMs are registered only where KubeVirt is: the chart's kubevirt.enabled (auto:
// when the cluster serves kubevirt.io/v1) renders exactly the webhooks the kustomize component manifests/kubevirt adds
// to the base, and nothing without it (so the chart's default render stays the base's).
// Needs helm and kubectl, built into .cache/ (a cold cache builds them here first).

import t from 'tap';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ensureControlPlane } from '../../controlplane/build.ts';
import { parseObjects, renderChart, type KubeObject } from '../../helm/render.ts';

t.setTimeout(20 * 60_000);

type Webhook = Record<string, unknown> & { name: string; rules: unknown[] };
const webhooks = (objects: KubeObject[], kind: string): Webhook[] =>
  ((objects.find((o) => o.kind === kind) as unknown as { webhooks: Webhook[] }).webhooks ?? []).map((w) => w);
const vmHooks = (objects: KubeObject[]) =>
  [...webhooks(objects, 'MutatingWebhookConfiguration'), ...webhooks(objects, 'ValidatingWebhookConfiguration')]
    .filter((w) => w.name.endsWith('vm.tessera.io'))
    .map(({ name, rules, clientConfig, namespaceSelector, failurePolicy }) => ({
      name,
      rules,
      path: (clientConfig as { service: { path: string } }).service.path,
      namespaceSelector,
      failurePolicy,
    }));

t.test(
  'the chart registers the KubeVirt webhooks only where kubevirt.io/v1 is served, as the component does',
  async (t) => {
    t.same(vmHooks(renderChart()), [], 'default render: no KubeVirt on the cluster, no KubeVirt webhooks');
    t.same(vmHooks(renderChart(['--set', 'kubevirt.enabled=false', '--api-versions', 'kubevirt.io/v1'])), []);
    const auto = vmHooks(renderChart(['--api-versions', 'kubevirt.io/v1']));
    t.same(
      auto.map((w) => w.name),
      ['mutate-vm.tessera.io', 'validate-vm.tessera.io'],
    );
    t.same(vmHooks(renderChart(['--set', 'kubevirt.enabled=true'])), auto, 'forced on');
    const kubectl = ensureControlPlane().kubectl;
    const overlay = fileURLToPath(new URL('../../../manifests/overlays/kubevirt', import.meta.url));
    const kustomized = vmHooks(parseObjects(execFileSync(kubectl, ['kustomize', overlay], { encoding: 'utf8' })));
    t.same(kustomized, auto, 'the component adds the same webhooks to the base');
    t.match(auto[1]!.rules, [
      { apiGroups: ['kubevirt.io'], operations: ['CREATE'], resources: ['virtualmachineinstances'] },
      { apiGroups: ['kubevirt.io'], operations: ['CREATE', 'UPDATE'], resources: ['virtualmachines'] },
    ]);
  },
);
