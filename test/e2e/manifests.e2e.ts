import t from 'tap';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startCluster } from '../controlplane/cluster.ts';

const MANIFESTS = fileURLToPath(new URL('../../manifests/', import.meta.url));

t.test(
  'every object of the kustomize base and its overlays is valid for a real API server (server-side dry run)',
  async (t) => {
    const cluster = await startCluster({ log: (l) => t.comment(l) });
    t.teardown(() => cluster.stop());
    const kubectl = (args: string[], input?: string) =>
      execFileSync(cluster.binaries.kubectl, ['--kubeconfig', cluster.kubeconfigFor('admin'), ...args], {
        input,
        encoding: 'utf8',
        stdio: ['pipe', 'pipe', 'pipe'],
      });
    // The base ships a PrometheusRule: give the API server the Prometheus Operator's kind first.
    kubectl(['apply', '-f', fileURLToPath(new URL('../fixtures/prometheus-rule-crd.yaml', import.meta.url))]);
    kubectl(['wait', '--for=condition=Established', 'crd/prometheusrules.monitoring.coreos.com', '--timeout=30s']);
    // local-image is the base without its PrometheusRule too (it builds on no-prometheus-operator).
    const withoutRule = ['overlays/no-prometheus-operator', 'overlays/local-image'];
    // overlays/kubevirt: the base with the KubeVirt component's webhooks (accepted where KubeVirt is not installed too).
    for (const dir of ['base', 'overlays/local', 'overlays/kubevirt', ...withoutRule]) {
      const rendered = execFileSync(cluster.binaries.kubectl, ['kustomize', `${MANIFESTS}${dir}`], {
        encoding: 'utf8',
      });
      const kinds = [...rendered.matchAll(/^kind: (\w+)$/gm)].map((m) => m[1]);
      t.ok(
        kinds.includes('MutatingWebhookConfiguration') &&
          kinds.includes('Deployment') &&
          kinds.includes('PodDisruptionBudget') &&
          kinds.includes('NetworkPolicy') &&
          kinds.includes('PrometheusRule') === !withoutRule.includes(dir),
        `${dir} renders the whole stack`,
      );
      // Namespaced objects can only be dry-run into a namespace that exists.
      if (dir === 'base')
        for (const ns of ['tessera-system', 'tessera-node-agent'])
          kubectl(['apply', '--server-side', '-f', '-'], `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${ns}\n`);
      const out = kubectl(
        ['apply', '--server-side', '--dry-run=server', '--field-manager=tessera-e2e', '-f', '-'],
        rendered,
      );
      const applied = out.split('\n').filter((l) => /serverside-applied \(server dry run\)/.test(l));
      if (applied.length !== kinds.length) t.comment(out);
      t.equal(applied.length, kinds.length, `${dir}: all ${kinds.length} objects accepted by the API server`);
    }
    // Least privilege, asked of the API server's own authorizer with the base's RBAC in force.
    kubectl(['apply', '--server-side', '--field-manager=tessera-e2e', '-f', `${MANIFESTS}base/rbac.yaml`]);
    const can = (user: string, verb: string, resource: string, subresource?: string, namespace = 'vision') => {
      try {
        const args = [
          'auth',
          'can-i',
          verb,
          resource,
          '-n',
          namespace,
          '--as',
          `system:serviceaccount:tessera-system:${user}`,
        ];
        return kubectl(subresource ? [...args, `--subresource=${subresource}`] : args).trim() === 'yes';
      } catch {
        return false; // `can-i` exits 1 for "no"
      }
    };
    t.ok(can('tessera-extender', 'create', 'pods', 'binding'), 'the extender creates Bindings');
    t.ok(can('tessera-extender', 'watch', 'pods'), 'and watches pods');
    t.notOk(can('tessera-extender', 'patch', 'pods'), 'but never patches pods: the Binding carries the assignment');
    t.notOk(can('tessera-extender', 'update', 'pods'), 'nor updates them');
    t.notOk(can('tessera-webhook', 'create', 'pods', 'binding'), 'the webhook only reads');
    t.ok(can('tessera-webhook', 'get', 'pods'), 'the pod a Binding names included');
    // Quota reservations (docs/quota.md): one ConfigMap, by name, and nothing else.
    const cm = (verb: string, name: string) => can('tessera-webhook', verb, name, undefined, 'tessera-system');
    t.ok(cm('get', 'configmaps/tessera-quota-reservations'), 'the webhook reads its quota reservations');
    t.ok(cm('update', 'configmaps/tessera-quota-reservations'), 'and updates them');
    t.notOk(cm('update', 'configmaps/tessera-policy'), 'but no other ConfigMap, the policy least of all');
    t.notOk(cm('create', 'configmaps'), 'and creates none');
    t.notOk(cm('list', 'configmaps'), 'nor lists them');
  },
);
