// The end-of-run checks, with the cluster quiet, from the final snapshot (what the API shows): the extender's allocation
// gauges equal the allocations the API shows; every pending pod has a reason (PodScheduled=False with a message) and
// really fits nowhere (the same evaluation as `tessera explain`, over the snapshot). Pure functions of their inputs.

import { explain } from '../../cli/explain.ts';
import { parseAssignment } from '../../core/assignment.ts';
import { parseDemand } from '../../core/demand.ts';
import type { ClusterSnapshot } from '../../core/invariants/cluster-snapshot.ts';
import { readNode } from '../../core/inventory/node-inventory.ts';
import type { KubePod } from '../../core/kube-objects.ts';
import { isTerminated } from '../../core/pod-lifecycle.ts';
import type { Policy } from '../../core/policy/model.ts';
import { equivalentsOfPod } from '../../core/pools/equivalents.ts';
import { ASSIGNMENT, TENANT_LABEL } from '../../core/well-known-names.ts';

export interface Finding {
  readonly check: string;
  readonly subject: string;
  readonly message: string;
}

/** Samples of one metric from Prometheus text: label set (as "k=v,k=v", sorted) -> value. */
export function metricSamples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  const line = new RegExp(`^${name}(?:\\{([^}]*)\\})?\\s+(\\S+)`);
  for (const l of text.split('\n')) {
    const m = line.exec(l);
    if (!m) continue;
    const labels = [...(m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
      .map((x) => `${x[1]}=${x[2]}`)
      .sort()
      .join(',');
    out.set(labels, Number(m[2]));
  }
  return out;
}

/** Pods holding GPUs by the API: bound and not finished (terminating pods hold theirs until they are gone). */
function holding(snapshot: ClusterSnapshot): KubePod[] {
  return snapshot.pods.filter((p) => p.spec?.nodeName && !isTerminated(p));
}

/** What the gauges should read, from the API alone: milli per GPU of fraction nodes, GPU-equivalents per tenant. */
export function expectedGauges(
  snapshot: ClusterSnapshot,
  policy: Policy,
): { gpu: Map<string, number>; tenant: Map<string, number> } {
  const gpu = new Map<string, number>();
  for (const n of snapshot.nodes) {
    const inv = readNode(n);
    if (inv.mode !== 'fraction') continue;
    for (const g of inv.gpus) gpu.set(`gpu=${g.index},node=${inv.name}`, 0);
  }
  const tenantOf = new Map(
    snapshot.namespaces.map((ns) => [ns.metadata?.name ?? '', ns.metadata?.labels?.[TENANT_LABEL] || null]),
  );
  const tenant = new Map<string, number>();
  for (const p of holding(snapshot)) {
    const text = p.metadata?.annotations?.[ASSIGNMENT];
    const a = text === undefined ? null : parseAssignment(text);
    if (a !== null && typeof a !== 'string')
      for (const g of a.gpus) {
        const key = `gpu=${g.index},node=${p.spec!.nodeName}`;
        gpu.set(key, (gpu.get(key) ?? 0) + g.milli);
      }
    const t = tenantOf.get(p.metadata?.namespace ?? '') ?? null;
    const demand = parseDemand(p);
    if (t === null || !demand.ok) continue;
    tenant.set(`tenant=${t}`, (tenant.get(`tenant=${t}`) ?? 0) + equivalentsOfPod(p, policy));
  }
  return { gpu, tenant };
}

/** Differences between the extender's /metrics and the API; empty when they agree. */
export function gaugeFindings(metricsText: string, snapshot: ClusterSnapshot, policy: Policy): Finding[] {
  const want = expectedGauges(snapshot, policy);
  const out: Finding[] = [];
  const compare = (metric: string, expected: Map<string, number>, what: string) => {
    const got = metricSamples(metricsText, metric);
    for (const key of new Set([...expected.keys(), ...got.keys()])) {
      const e = expected.get(key) ?? 0;
      const g = got.get(key) ?? 0;
      if (Math.abs(e - g) > 1e-6)
        out.push({
          check: 'extender-gauges',
          subject: key,
          message: `${metric}{${key}} is ${g} but the API shows ${Number(e.toFixed(6))} ${what}`,
        });
    }
  };
  compare('tessera_gpu_allocated_milli', want.gpu, 'milli held by bound, running pods');
  compare('tessera_tenant_gpu_equivalents', want.tenant, 'GPU-equivalents held by bound, running pods');
  return out;
}

/**
 * Pods KWOK lost: bound for more than `graceMs` and never started, or still Running `graceMs` past their run time
 * (`kwok.tessera.io/run-for`, counted from startTime). KWOK (v0.8.0) does not retry a Stage whose patch failed (while
 * the API server restarts), ignores a pod bound to a node whose Lease a restarted KWOK has not taken over yet, and can
 * apply the pod-ready Stage twice to one pod after a restart (the second patch adds a second pod IP and is rejected),
 * after which the pod's end is never scheduled. Nothing of Tessera's is at fault, but such a pod holds its GPUs and
 * quota until someone deletes it, as a user would a hung job.
 */
export function lostPods(snapshot: ClusterSnapshot, graceMs: number): KubePod[] {
  const now = Date.parse(snapshot.time);
  return snapshot.pods.filter((p) => {
    if (p.metadata?.deletionTimestamp || !p.spec?.nodeName) return false;
    const status = (
      p as { status?: { startTime?: string; conditions?: { type?: string; lastTransitionTime?: string }[] } }
    ).status;
    if (p.status?.phase === 'Pending') {
      const bound = status?.conditions?.find((c) => c.type === 'PodScheduled')?.lastTransitionTime;
      return bound !== undefined && now - Date.parse(bound) > graceMs;
    }
    const runFor = /^(\d+(?:\.\d+)?)s$/.exec(p.metadata?.annotations?.['kwok.tessera.io/run-for'] ?? '');
    const started = Date.parse(status?.startTime ?? '');
    return runFor !== null && p.status?.phase === 'Running' && now - started > Number(runFor[1]) * 1000 + graceMs;
  });
}

/** Pending pods of tenant namespaces that want a GPU. */
export function pendingGpuPods(snapshot: ClusterSnapshot): KubePod[] {
  const tenants = new Set(
    snapshot.namespaces.filter((n) => n.metadata?.labels?.[TENANT_LABEL]).map((n) => n.metadata?.name ?? ''),
  );
  return snapshot.pods.filter(
    (p) =>
      tenants.has(p.metadata?.namespace ?? '') &&
      !p.spec?.nodeName &&
      !isTerminated(p) &&
      !p.metadata?.deletionTimestamp,
  );
}

/** Every pending pod must say why (PodScheduled=False with a message) and must really fit nowhere. */
export function pendingFindings(snapshot: ClusterSnapshot, policy: Policy): Finding[] {
  const out: Finding[] = [];
  for (const pod of pendingGpuPods(snapshot)) {
    const name = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    const conditions = (pod as { status?: { conditions?: { type?: string; status?: string; message?: string }[] } })
      .status?.conditions;
    const scheduled = conditions?.find((c) => c.type === 'PodScheduled');
    if (scheduled?.status !== 'False' || !scheduled.message)
      out.push({
        check: 'pending-reason',
        subject: name,
        message: `pending pod ${name} has no PodScheduled=False condition with a message (${JSON.stringify(scheduled ?? null)})`,
      });
    const e = explain(pod, snapshot.nodes, snapshot.pods, snapshot.namespaces, policy, undefined, { existing: true });
    if (e.choice !== null)
      out.push({
        check: 'pending-fits',
        subject: name,
        message: `pending pod ${name} fits on ${e.choice.node} (GPUs ${e.choice.gpus.map((g) => `${g.index}:${g.milli}m`).join(',') || 'by the device plugin'}) by the extender's own evaluation, yet it was not placed`,
      });
  }
  return out;
}
