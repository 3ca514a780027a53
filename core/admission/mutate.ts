// The mutating stage: moves GPU pods to Tessera's scheduler and pool, turns GPU annotations into concrete resources,
// wires NVIDIA_VISIBLE_DEVICES, stamps the tenant and the policy revision. It edits a clone and never the input;
// running it on its own output changes nothing (reinvocationPolicy: IfNeeded).

import jsonPatch from 'fast-json-patch';
import { parseDemand, wantsGpu } from '../demand.ts';
import type { KubeContainer, KubePod, PodSpec } from '../kube-objects.ts';
import {
  GPU_DELIVERY_ANNOTATION,
  isGpuResource,
  POLICY_REVISION,
  POOL_ANNOTATION,
  TENANT_LABEL,
  VISIBLE_DEVICES,
} from '../well-known-names.ts';
import { tenantNamed, type Policy } from '../policy/model.ts';
import { decidePodGpu, withoutDraExtended } from '../dra/decision.ts';
import { NO_DRA, type DraLookup } from '../dra/lookup.ts';
import { DRA_CLAIMS_RESOURCE } from '../dra/names.ts';
import { DEVICES_MARKER } from '../pools/device-plan.ts';
import { NO_POD_DRA, readPodDra, type PodDra } from '../dra/pod-claims.ts';
import { tenantOfNamespace, type ClusterView } from './cluster-view.ts';
import { isVmKind, KUBEVIRT_GROUP, vmiView } from '../kubevirt/vm-objects.ts';
import { applyVgpu, chooseVgpu } from '../kubevirt/vgpu-fraction.ts';
import type { AdmissionRequest } from './request.ts';
import {
  allContainers,
  ensureEnv,
  ensureToleration,
  hasEnv,
  requireNodeLabels,
  VISIBLE_DEVICES_ENV,
} from './pod-edits.ts';
import { resizeConflictDenial, resizeConflicts, vclusterOf } from './vcluster.ts';

export interface MutationResult {
  readonly pod: KubePod;
  /** Set when the pod cannot be admitted at all (its GPU ask cannot be met); the webhook denies with it. */
  readonly denial: string | null;
  readonly warnings: readonly string[];
}

const DEFAULT_SCHEDULER = 'default-scheduler';

/**
 * Containers that ask for GPUs natively (init containers included), through DRA claims or DRA-backed extended
 * resources, else the first app container.
 */
function gpuContainers(
  pod: KubePod,
  dra: PodDra = NO_POD_DRA,
  isDevice: (resource: string) => boolean = () => false,
): KubeContainer[] {
  const spec = pod.spec ?? {};
  const draResources = new Set(dra.extended.map((e) => e.resource));
  const holding = (c: KubeContainer) =>
    Object.keys({ ...(c.resources?.limits ?? {}), ...(c.resources?.requests ?? {}) }).some(
      (r) => isGpuResource(r) || draResources.has(r) || isDevice(r),
    ) || (c.resources?.claims ?? []).some((claim) => dra.gpuClaimNames.has(claim.name));
  const native = [...(spec.initContainers ?? []), ...(spec.containers ?? [])].filter(holding);
  return native.length > 0 ? native : (spec.containers ?? []).slice(0, 1);
}

function stripGpuResources(c: KubeContainer): void {
  for (const list of [c.resources?.limits, c.resources?.requests]) {
    if (!list) continue;
    for (const key of Object.keys(list)) if (isGpuResource(key)) delete list[key];
  }
}

/** Whether the pod's effective GPU requests already are the plan (then the user's layout is kept as written). */
function samePlan(effective: Readonly<Record<string, number>>, limits: Readonly<Record<string, string>>): boolean {
  const keys = new Set([...Object.keys(effective), ...Object.keys(limits)]);
  return [...keys].every((k) => effective[k] === Number(limits[k] ?? Number.NaN));
}

/**
 * Mutates a pod under review. `namespaceTenant` is the tenant label of the pod's namespace (or null); `dra` resolves
 * the claims the pod names.
 */
export function mutatePod(
  input: KubePod,
  namespaceTenant: string | null,
  policy: Policy,
  dra: DraLookup = NO_DRA,
  namespace: string = input.metadata?.namespace ?? '',
): MutationResult {
  const pod = structuredClone(input);
  const spec = (pod.spec ??= {});
  const meta = (pod.metadata ??= {});
  const warnings: string[] = [];
  let gpu: KubeContainer[] = [];
  let planned: { readonly pool: string; readonly limits: Readonly<Record<string, string>> } | null = null;
  // Fraction pools without Tessera's node agent get NVIDIA_VISIBLE_DEVICES through the downward API.
  let downwardApi = false;

  // Malformed GPU input is the validating stage's to deny with its field; mutate nothing GPU-related.
  const parsed = parseDemand(pod, policy.accelerators);
  const tenant = namespaceTenant === null ? undefined : tenantNamed(policy, namespaceTenant);
  const claims = parsed.ok && tenant ? readPodDra(pod, namespace, policy, dra) : NO_POD_DRA;
  const demand = parsed.ok ? withoutDraExtended(parsed.demand, claims) : null;
  if (demand !== null && (wantsGpu(demand) || claims.gpu) && tenant) {
    const decision = decidePodGpu(demand, claims, tenant, policy, namespace, dra, spec.nodeSelector ?? {});
    if (!decision.ok) return { pod: input, denial: decision.message, warnings };
    const { pool, plan } = decision;
    planned = { pool: pool.name, limits: plan.limits };
    if (!spec.schedulerName || spec.schedulerName === DEFAULT_SCHEDULER) spec.schedulerName = policy.schedulerName;
    (meta.annotations ??= {})[POOL_ANNOTATION] = pool.name;
    gpu = gpuContainers(pod, claims, (r) => policy.accelerators.isDevice(r));
    // Devices (a VM's passthrough or vGPU devices) are planned as written, so they always match their plan.
    if (!samePlan({ ...demand.gpuResources, ...demand.devices }, plan.limits)) {
      // The plan goes where the pod asked for GPUs (an init container, if that is where it did).
      for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) stripGpuResources(c);
      const target = gpu[0];
      if (target) {
        const resources = (target.resources ??= {});
        const limits = (resources.limits ??= {});
        Object.assign(limits, plan.limits);
        if (resources.requests && Object.keys(resources.requests).length > 0)
          Object.assign(resources.requests, plan.limits);
      }
      gpu = target ? [target] : [];
    }
    if (claims.gpu) markForExtender(gpu, claims);
    if (Object.keys(demand.devices).length > 0 && gpu[0])
      ((gpu[0].resources ??= {}).limits ??= {})[DEVICES_MARKER] = '1';
    requireNodeLabels(spec, pool.nodeSelector);
    if (pool.taint) ensureToleration(spec, pool.taint);
    downwardApi = pool.fractionMode === 'fraction' && pool.delivery === null;
    // The node agent answers in the pool's mode when the policy fixes one; `auto` leaves it to each node.
    if (pool.delivery && pool.delivery.mode !== 'auto') meta.annotations[GPU_DELIVERY_ANNOTATION] = pool.delivery.mode;
    else delete meta.annotations[GPU_DELIVERY_ANNOTATION];
    if (pool.fractionMode === 'time-slicing')
      warnings.push(
        `pool ${pool.name} time-slices GPUs: there is no memory or fault isolation between the pods sharing a GPU`,
      );
  }
  if (namespaceTenant !== null) {
    (meta.labels ??= {})[TENANT_LABEL] = namespaceTenant;
    (meta.annotations ??= {})[POLICY_REVISION] = policy.revision;
  }
  for (const c of allContainers(spec)) {
    if (hasEnv(c, VISIBLE_DEVICES_ENV)) continue;
    if (gpu.includes(c)) {
      // On fraction pools the extender picks the GPUs at bind; the kubelet resolves this when the container starts. Where
      // the node agent serves the pool, its Allocate answer delivers the GPUs and nothing is wired here.
      if (downwardApi)
        ensureEnv(c, {
          name: VISIBLE_DEVICES_ENV,
          valueFrom: { fieldRef: { fieldPath: `metadata.annotations['${VISIBLE_DEVICES}']` } },
        });
    } else {
      // A CUDA base image sees every GPU of the node unless told otherwise.
      ensureEnv(c, { name: VISIBLE_DEVICES_ENV, value: 'void' });
    }
  }
  // A vCluster syncer resizes synced pods back to their virtual resources: only additions survive (vcluster.ts).
  const vcluster = vclusterOf(input);
  const conflicts = vcluster !== null && planned !== null ? resizeConflicts(input, pod) : [];
  if (vcluster !== null && planned !== null && conflicts.length > 0)
    return { pod: input, denial: resizeConflictDenial(vcluster, planned.pool, conflicts, planned.limits), warnings };
  return { pod, denial: null, warnings };
}

/**
 * kube-scheduler calls an extender that lists managedResources only for pods that request one of them, so a pod whose
 * GPUs come from claims alone would never reach Tessera's extender. Such a pod gets one unit of a marker resource the
 * extender manages with ignoredByScheduler (kube-scheduler's NodeResourcesFit skips it, the kubelet drops extended
 * resources its node does not advertise). Pods with a DRA-backed extended resource are left alone: kube-scheduler's
 * DRA plugin refuses any node for a pod with another extended resource that the node lacks. They reach the extender
 * when that resource is a managed one (a class's extendedResourceName such as nvidia.com/gpu); the implicit
 * deviceclass.resource.kubernetes.io/<class> names cannot be (kube-scheduler rejects kubernetes.io names there).
 */
function markForExtender(gpu: readonly KubeContainer[], claims: PodDra): void {
  if (claims.extended.length > 0) return;
  const target = gpu[0];
  if (!target) return;
  const carries = (c: KubeContainer) =>
    Object.keys({ ...(c.resources?.limits ?? {}), ...(c.resources?.requests ?? {}) }).some(isGpuResource);
  if (gpu.some(carries)) return;
  const limits = ((target.resources ??= {}).limits ??= {});
  limits[DRA_CLAIMS_RESOURCE] = '1';
}

/**
 * A VirtualMachineInstance or VirtualMachine with tessera.io/gpu-fraction: its one vGPU becomes the smallest profile of
 * the tenant's vgpu pools that meets the fraction (core/kubevirt/vgpu-fraction.ts). Null when there is nothing to do.
 */
function mutateVm(
  req: AdmissionRequest,
  kind: 'VirtualMachineInstance' | 'VirtualMachine',
  policy: Policy,
  view: ClusterView,
): Mutation | null {
  if (req.operation !== 'CREATE' && !(req.operation === 'UPDATE' && kind === 'VirtualMachine')) return null;
  if (typeof req.object !== 'object' || req.object === null) return null;
  const tenantName = tenantOfNamespace(view, req.namespace ?? '');
  const tenant = tenantName === null ? undefined : tenantNamed(policy, tenantName);
  if (!tenant) return null;
  const copy = structuredClone(req.object) as { spec?: { template?: { metadata?: object } } };
  if (kind === 'VirtualMachine' && typeof copy.spec?.template === 'object' && copy.spec.template !== null)
    copy.spec.template.metadata ??= {};
  const vmi = vmiView(kind, copy);
  if (vmi === null) return null;
  const choice = chooseVgpu(vmi, tenant, policy);
  if (choice === null) return null;
  if (!choice.ok) return { patch: [], denial: `${vmi.where}${choice.message}`, warnings: [], subject: kind };
  applyVgpu(vmi, choice);
  return { patch: jsonPatch.compare(req.object as object, copy), denial: null, warnings: [] };
}

export interface Mutation {
  readonly patch: jsonPatch.Operation[];
  readonly denial: string | null;
  /** What was reviewed, for the denial's first line (default: pod). */
  readonly subject?: string;
  readonly warnings: readonly string[];
}

/** The mutating stage's patch for a request. */
export function mutateRequest(req: AdmissionRequest, policy: Policy, view: ClusterView): Mutation {
  const none: Mutation = { patch: [], denial: null, warnings: [] };
  if (req.kind?.group === KUBEVIRT_GROUP && isVmKind(req.kind.kind))
    return mutateVm(req, req.kind.kind, policy, view) ?? none;
  if (req.kind?.kind !== 'Pod' || typeof req.object !== 'object' || req.object === null) return none;
  const pod = req.object as KubePod;
  if (req.operation === 'UPDATE' && req.subResource === 'ephemeralcontainers') {
    // Only ephemeral containers may change through this subresource.
    const copy = structuredClone(pod);
    for (const c of (copy.spec as PodSpec | undefined)?.ephemeralContainers ?? [])
      if (!hasEnv(c, VISIBLE_DEVICES_ENV)) ensureEnv(c, { name: VISIBLE_DEVICES_ENV, value: 'void' });
    return { patch: jsonPatch.compare(pod, copy), denial: null, warnings: [] };
  }
  if (req.operation !== 'CREATE') return none;
  const namespace = req.namespace || pod.metadata?.namespace || '';
  const result = mutatePod(pod, tenantOfNamespace(view, namespace), policy, view.dra ?? NO_DRA, namespace);
  if (result.denial !== null) return { patch: [], denial: result.denial, warnings: result.warnings };
  return { patch: jsonPatch.compare(pod, result.pod), denial: null, warnings: result.warnings };
}
