// Drift findings as PolicyReport objects (wgpolicyk8s.io/v1alpha2), one per namespace, where that CRD is installed:
// the shape Kyverno and Kubewarden users already query and alert on. Bounded: one object per namespace, at most 200
// results each, replaced on every audit; namespaces without findings lose their report.

import { ApisApi, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { DriftReport } from '../core/admission/audit.ts';

const GROUP = 'wgpolicyk8s.io';
const VERSION = 'v1alpha2';
const PLURAL = 'policyreports';
const NAME = 'tessera-drift';
const MAX_RESULTS = 200;

export interface PolicyReportWriter {
  write(report: DriftReport, policyName: string): Promise<void>;
}

function status(e: unknown): number | undefined {
  return (e as { code?: number }).code;
}

export function policyReportWriter(kc: KubeConfig, log: Logger): PolicyReportWriter {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const apis = kc.makeApiClient(ApisApi);
  let available = false;
  let told = false;
  const written = new Set<string>();
  // Asked again on every audit until the CRD shows up (one discovery call per audit interval), then remembered.
  const crdInstalled = async (): Promise<boolean> => {
    if (available) return true;
    try {
      const groups = await apis.getAPIVersions();
      available = groups.groups.some((g) => g.name === GROUP && g.versions.some((v) => v.version === VERSION));
    } catch {
      available = false;
    }
    if (!available && !told) {
      told = true;
      log.info('PolicyReport CRD (wgpolicyk8s.io/v1alpha2) not installed; drift goes to metrics and logs only');
    }
    return available;
  };
  return {
    async write(report, policyName) {
      if (!(await crdInstalled())) return;
      const byNamespace = new Map<string, DriftReport['drifted'][number][]>();
      for (const pod of report.drifted) {
        const list = byNamespace.get(pod.namespace) ?? [];
        list.push(pod);
        byNamespace.set(pod.namespace, list);
      }
      const now = Math.floor(Date.now() / 1000);
      for (const [namespace, pods] of byNamespace) {
        const results = pods
          .flatMap((p) =>
            p.violations.map((v) => ({
              policy: policyName,
              rule: v.rule,
              result: v.action === 'warn' ? 'warn' : 'fail',
              severity: v.action === 'enforce' ? 'high' : v.action === 'warn' ? 'medium' : 'low',
              message: v.message,
              source: 'tessera',
              timestamp: { seconds: now, nanos: 0 },
              properties: {
                action: v.action,
                tenant: p.tenant ?? '',
                admittedRevision: p.admittedRevision ?? '',
                currentRevision: report.revision,
              },
              resources: [{ apiVersion: 'v1', kind: 'Pod', name: p.name, namespace }],
            })),
          )
          .slice(0, MAX_RESULTS);
        const summary = {
          pass: 0,
          fail: results.filter((r) => r.result === 'fail').length,
          warn: results.filter((r) => r.result === 'warn').length,
          error: 0,
          skip: 0,
        };
        const body = {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: 'PolicyReport',
          metadata: { name: NAME, namespace, labels: { 'app.kubernetes.io/managed-by': 'tessera' } },
          summary,
          results,
        };
        try {
          const existing = (await custom.getNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace,
            plural: PLURAL,
            name: NAME,
          })) as { metadata?: { resourceVersion?: string } };
          await custom.replaceNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace,
            plural: PLURAL,
            name: NAME,
            body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion } },
          });
        } catch (e) {
          if (status(e) !== 404) {
            log.warn(
              { namespace, err: e instanceof Error ? e.message : String(e) },
              'could not update the PolicyReport',
            );
            continue;
          }
          await custom
            .createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, body })
            .catch((err: unknown) => log.warn({ namespace, err: String(err) }, 'could not create the PolicyReport'));
        }
        written.add(namespace);
      }
      for (const namespace of [...written]) {
        if (byNamespace.has(namespace)) continue;
        await custom
          .deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name: NAME })
          .catch(() => {});
        written.delete(namespace);
      }
    },
  };
}
