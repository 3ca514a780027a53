// `tessera audit`: re-evaluates every running pod against the current policy and reports the drifted ones by rule and
// tenant, from a snapshot file or the live cluster (current kubeconfig context).

import { parseArgs } from 'node:util';
import { CoreV1Api } from '@kubernetes/client-node';
import { auditPods, type DriftReport } from '../core/admission/audit.ts';
import { staticClusterView } from '../core/admission/cluster-view.ts';
import { staticDraLookup } from '../core/dra/lookup.ts';
import { listDraObjects } from '../server/dra-objects.ts';
import type { KubeNamespace, KubePod } from '../core/kube-objects.ts';
import { fromApi, loadKubeconfig } from './kube.ts';
import { readObjects } from './objects.ts';
import { loadPolicy } from './policy-files.ts';
import { AUDIT_USAGE, UsageError } from './help.ts';

export function formatDrift(report: DriftReport): string {
  const lines = [
    `policy revision ${report.revision}: ${report.checked} running pod(s) checked, ${report.drifted.length} drifted, ${report.staleRevision} admitted under another revision`,
  ];
  if (report.byRule.length > 0) {
    lines.push('', 'by rule and tenant:');
    for (const r of report.byRule)
      lines.push(`  ${r.rule.padEnd(28)} ${r.action.padEnd(8)} ${r.tenant.padEnd(16)} ${r.pods} pod(s)`);
    lines.push('', 'pods:');
    for (const p of report.drifted) {
      lines.push(
        `  ${p.namespace}/${p.name} (tenant ${p.tenant ?? '-'}, admitted under ${p.admittedRevision ?? 'no revision'})`,
      );
      for (const v of p.violations) lines.push(`    [${v.rule}, ${v.action}] ${v.message}`);
    }
  }
  return lines.join('\n');
}

export async function auditCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      policy: { type: 'string', multiple: true },
      snapshot: { type: 'string' },
      kubeconfig: { type: 'string' },
      context: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  if (!values.policy) throw new UsageError('--policy is required', AUDIT_USAGE);
  const policy = loadPolicy(values.policy);
  let namespaces: KubeNamespace[];
  let pods: KubePod[];
  let dra: unknown[];
  if (values.snapshot) {
    ({ namespaces, pods, other: dra } = readObjects(values.snapshot));
  } else {
    const kc = loadKubeconfig(values.kubeconfig, values.context);
    const core = kc.makeApiClient(CoreV1Api);
    const [nsList, podList] = await fromApi(kc, 'list namespaces and pods', () =>
      Promise.all([core.listNamespace(), core.listPodForAllNamespaces()]),
    );
    namespaces = nsList.items as KubeNamespace[];
    pods = podList.items as KubePod[];
    dra = await fromApi(kc, 'list DRA objects', () => listDraObjects(kc));
  }
  const report = auditPods(pods, policy, staticClusterView(namespaces, pods, staticDraLookup(dra)));
  console.log(values.json ? JSON.stringify(report, null, 2) : formatDrift(report));
  return 0;
}
