// The invariants a churning cluster must keep, checked from a snapshot of the API alone (not from any server's memory):
// no GPU over 1000 milli, no node over its allocatable, no tenant over quota (all its non-terminated pods), same-tenant isolation kept, and every
// bound fraction pod's assignment matching its node and its request.

import { parseAssignment } from '../assignment.ts';
import { parseDemand, type PodDemand } from '../demand.ts';
import { vmOfPod } from '../kubevirt/launcher.ts';
import { readNode, type NodeInventory } from '../inventory/node-inventory.ts';
import type { KubePod } from '../kube-objects.ts';
import { isLeaving, isTerminated } from '../pod-lifecycle.ts';
import { isolatedTenants, tenantNamed, type Policy } from '../policy/model.ts';
import { equivalentsOfPod, formatEquivalents } from '../pools/equivalents.ts';
import { memoryShareMilli } from '../pools/memory-share.ts';
import { ASSIGNMENT, GPU_MILLI, isGpuResource, TENANT_LABEL, VISIBLE_DEVICES } from '../well-known-names.ts';
import type { ClusterSnapshot } from './cluster-snapshot.ts';

export type InvariantName = 'gpu-overcommit' | 'node-allocatable' | 'tenant-quota' | 'tenant-isolation' | 'assignment';

export interface InvariantViolation {
  readonly invariant: InvariantName;
  /** The node, GPU, tenant or pod at fault. */
  readonly subject: string;
  readonly message: string;
}

interface BoundPod {
  readonly pod: KubePod;
  readonly name: string;
  readonly node: string;
  readonly tenant: string | null;
  readonly demand: PodDemand;
}

/** Pods that hold capacity: bound and not finished (terminating pods still run until they are gone). */
function boundPods(
  snapshot: ClusterSnapshot,
  tenantOf: (ns: string) => string | null,
  policy: Policy | null,
): BoundPod[] {
  const out: BoundPod[] = [];
  for (const pod of snapshot.pods) {
    const node = pod.spec?.nodeName;
    if (!node || isTerminated(pod)) continue;
    const parsed = parseDemand(pod, policy?.accelerators);
    if (!parsed.ok) continue;
    const ns = pod.metadata?.namespace ?? '';
    out.push({ pod, name: `${ns}/${pod.metadata?.name ?? ''}`, node, tenant: tenantOf(ns), demand: parsed.demand });
  }
  return out;
}

/** The milli a fraction pod asks of GPU `index` of its node: a memory-only share takes its memory's share there. */
function askedOn(nodes: Map<string, NodeInventory>, p: BoundPod, index: number): number {
  const f = p.demand.fraction!;
  const gpu = nodes.get(p.node)?.gpus.find((g) => g.index === index);
  if (!f.memoryOnly || f.memoryMiB === null || gpu === undefined || gpu.memoryMiB <= 0) return f.milliPerGpu;
  return memoryShareMilli(f.memoryMiB, gpu.memoryMiB, f.milliPerGpu);
}

function gpuChecks(
  nodes: Map<string, NodeInventory>,
  pods: readonly BoundPod[],
  policy: Policy | null,
): InvariantViolation[] {
  const out: InvariantViolation[] = [];
  const perGpu = new Map<string, { milli: number; pods: string[]; tenants: Set<string> }>();
  const isolated = policy === null ? new Set<string>() : isolatedTenants(policy);
  for (const p of pods) {
    if (p.demand.gpuResources[GPU_MILLI] === undefined) continue;
    const text = p.pod.metadata?.annotations?.[ASSIGNMENT];
    const assignment = text === undefined ? 'it has no tessera.io/assignment' : parseAssignment(text);
    if (typeof assignment === 'string') {
      out.push({ invariant: 'assignment', subject: p.name, message: `bound fraction pod ${p.name}: ${assignment}` });
      continue;
    }
    const f = p.demand.fraction;
    const mismatch =
      assignment.node !== p.node
        ? `names node ${assignment.node} but the pod is bound to ${p.node}`
        : f !== null &&
            (assignment.gpus.length !== f.gpus || assignment.gpus.some((g) => g.milli !== askedOn(nodes, p, g.index)))
          ? `holds ${assignment.gpus.map((g) => `${g.index}:${g.milli}m`).join(',')} but the pod asks for ${f.gpus} x ${f.memoryOnly ? `${f.memoryMiB} MiB (at least ${f.milliPerGpu}m)` : `${f.milliPerGpu}m`}`
          : p.pod.metadata?.annotations?.[VISIBLE_DEVICES] !==
              [...assignment.gpus.map((g) => g.index)].sort((a, b) => a - b).join(',')
            ? `and ${VISIBLE_DEVICES} disagree`
            : null;
    if (mismatch !== null)
      out.push({ invariant: 'assignment', subject: p.name, message: `${p.name}: its assignment ${mismatch}` });
    const shares = assignment.gpus.length === 1 && assignment.gpus[0]!.milli < 1000;
    for (const g of assignment.gpus) {
      const key = `${p.node}/gpu${g.index}`;
      const e = perGpu.get(key) ?? { milli: 0, pods: [], tenants: new Set<string>() };
      e.milli += g.milli;
      e.pods.push(p.name);
      if (shares) e.tenants.add(p.tenant ?? '(none)');
      perGpu.set(key, e);
    }
  }
  for (const [gpu, e] of perGpu) {
    if (e.milli > 1000)
      out.push({
        invariant: 'gpu-overcommit',
        subject: gpu,
        message: `GPU ${gpu} holds ${e.milli} milli (${e.pods.join(', ')})`,
      });
    if (e.tenants.size > 1 && [...e.tenants].some((t) => isolated.has(t))) {
      out.push({
        invariant: 'tenant-isolation',
        subject: gpu,
        message: `GPU ${gpu} is shared by tenants ${[...e.tenants].sort().join(', ')}, and one of them shares with no other`,
      });
    }
  }
  // Time-slicing and MPS share whole nodes' GPUs.
  const perNode = new Map<string, Set<string>>();
  for (const p of pods) {
    const mode = nodes.get(p.node)?.mode;
    if ((mode !== 'time-slicing' && mode !== 'mps') || !Object.keys(p.demand.gpuResources).some(isGpuResource))
      continue;
    perNode.set(p.node, (perNode.get(p.node) ?? new Set()).add(p.tenant ?? '(none)'));
  }
  for (const [node, tenants] of perNode) {
    if (tenants.size > 1 && [...tenants].some((t) => isolated.has(t))) {
      out.push({
        invariant: 'tenant-isolation',
        subject: node,
        message: `${node} time-shares its GPUs between tenants ${[...tenants].sort().join(', ')}`,
      });
    }
  }
  return out;
}

function allocatableChecks(nodes: Map<string, NodeInventory>, pods: readonly BoundPod[]): InvariantViolation[] {
  const out: InvariantViolation[] = [];
  const held = new Map<string, Map<string, number>>();
  for (const p of pods) {
    const m = held.get(p.node) ?? new Map<string, number>();
    for (const [r, n] of Object.entries({ ...p.demand.gpuResources, ...p.demand.devices }))
      m.set(r, (m.get(r) ?? 0) + n);
    held.set(p.node, m);
  }
  for (const [name, m] of held) {
    const allocatable = nodes.get(name)?.resources ?? {};
    for (const [r, n] of m) {
      const limit = allocatable[r] ?? 0;
      if (n > limit)
        out.push({
          invariant: 'node-allocatable',
          subject: name,
          message: `node ${name} holds ${n} ${r} against an allocatable of ${limit}`,
        });
    }
  }
  return out;
}

/**
 * The quota contract: GPU-equivalents over all non-terminated pods of the tenant, bound or not (a pod admitted and
 * still pending holds its quota), placed memory-only shares at what their assignment took. A pod being deleted
 * (deletionTimestamp set) is counted as admission counts it: its quota is free from the delete on (isLeaving).
 */
function quotaChecks(
  snapshot: ClusterSnapshot,
  tenantOf: (ns: string) => string | null,
  policy: Policy,
): InvariantViolation[] {
  const out: InvariantViolation[] = [];
  const used = new Map<string, number>();
  // A VM's launcher pods (a live migration's source and target) hold the most either holds (core/kubevirt).
  const vms = new Map<string, { tenant: string; held: number }>();
  for (const pod of snapshot.pods) {
    if (isLeaving(pod)) continue;
    const tenant = tenantOf(pod.metadata?.namespace ?? '');
    if (tenant === null) continue;
    const eq = equivalentsOfPod(pod, policy);
    const vm = vmOfPod(pod);
    if (vm === null) used.set(tenant, (used.get(tenant) ?? 0) + eq);
    else vms.set(vm, { tenant, held: Math.max(eq, vms.get(vm)?.held ?? 0) });
  }
  for (const { tenant, held } of vms.values()) used.set(tenant, (used.get(tenant) ?? 0) + held);
  for (const [tenant, equivalents] of used) {
    const quota = tenantNamed(policy, tenant)?.quotaGpus ?? null;
    if (quota !== null && equivalents > quota + 1e-9) {
      out.push({
        invariant: 'tenant-quota',
        subject: tenant,
        message: `tenant ${tenant} holds ${formatEquivalents(equivalents)} GPU-equivalents in non-terminated pods, over its quota of ${quota}`,
      });
    }
  }
  return out;
}

/** Every violated invariant in the snapshot, under the policy in force (null: no quota or isolation to check). */
export function checkInvariants(snapshot: ClusterSnapshot, policy: Policy | null): InvariantViolation[] {
  const tenants = new Map(
    snapshot.namespaces.map((n) => [n.metadata?.name ?? '', n.metadata?.labels?.[TENANT_LABEL] || null]),
  );
  const pods = boundPods(snapshot, (ns) => tenants.get(ns) ?? null, policy);
  const nodes = new Map(snapshot.nodes.map((n) => [n.metadata?.name ?? '', readNode(n, policy?.accelerators)]));
  return [
    ...gpuChecks(nodes, pods, policy),
    ...allocatableChecks(nodes, pods),
    ...(policy === null ? [] : quotaChecks(snapshot, (ns) => tenants.get(ns) ?? null, policy)),
  ];
}
