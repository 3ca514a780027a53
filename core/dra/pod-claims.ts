// A pod's DRA demand: the claims its spec.resourceClaims name (a ResourceClaim by name, or the claim a
// ResourceClaimTemplate stamps out, once generated the one pod.status.resourceClaimStatuses names), and the extended
// resources that a DeviceClass backs with DRA (KEP-5004) beyond the device-plugin names Tessera already plans
// (nvidia.com/gpu, nvidia.com/mig-*): the implicit deviceclass.resource.kubernetes.io/<class> and a class's
// spec.extendedResourceName.

import { effectiveRequest, wholeCount } from '../demand.ts';
import type { KubePod } from '../kube-objects.ts';
import type { Policy, Pool } from '../policy/model.ts';
import { isGpuResource } from '../well-known-names.ts';
import { asksForGpus, readClaimSpec, type Alternative, type RequestReading } from './claim-requests.ts';
import { requestsEquivalents } from './claim-policy.ts';
import { classOfExtendedResource, classReach, selectorFacts } from './gpu-classes.ts';
import type { DraLookup } from './lookup.ts';
import type { KubeResourceClaim, PodResourceClaim, PodResourceClaimStatus, ResourceClaimSpec } from './objects.ts';

export interface PodClaimSource {
  /** The entry's name in pod.spec.resourceClaims (what containers' resources.claims refer to). */
  readonly podClaim: string;
  readonly kind: 'ResourceClaim' | 'ResourceClaimTemplate';
  readonly objectName: string;
  /** A ResourceClaim named by the pod (several pods may share it); template claims belong to one pod. */
  readonly shared: boolean;
  readonly requests: readonly RequestReading[];
  /** The ResourceClaim object, when the source is one (its status says whether it is allocated). */
  readonly claim?: KubeResourceClaim;
}

export interface PodDra {
  readonly claims: readonly PodClaimSource[];
  /** References Tessera cannot resolve (a claim or template that does not exist, or not yet in its cache). */
  readonly unresolved: readonly string[];
  /** Extended resources backed by a GPU DeviceClass, each read as one request of its class. */
  readonly extended: readonly { readonly resource: string; readonly request: RequestReading }[];
  readonly malformed: readonly string[];
  /** Whether any claim or extended resource can reach GPUs. */
  readonly gpu: boolean;
  /** pod.spec.resourceClaims names whose claims reach GPUs. */
  readonly gpuClaimNames: ReadonlySet<string>;
}

export const NO_POD_DRA: PodDra = {
  claims: [],
  unresolved: [],
  extended: [],
  malformed: [],
  gpu: false,
  gpuClaimNames: new Set(),
};

function podClaims(pod: KubePod): PodResourceClaim[] {
  const claims = (pod.spec as { resourceClaims?: PodResourceClaim[] | null } | undefined)?.resourceClaims;
  return Array.isArray(claims) ? claims : [];
}

function claimStatuses(pod: KubePod): PodResourceClaimStatus[] {
  const statuses = (pod.status as { resourceClaimStatuses?: PodResourceClaimStatus[] | null } | undefined)
    ?.resourceClaimStatuses;
  return Array.isArray(statuses) ? statuses : [];
}

function resourceNames(pod: KubePod): Set<string> {
  const names = new Set<string>();
  const spec = pod.spec ?? {};
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    for (const key of Object.keys(c.resources?.limits ?? {})) names.add(key);
    for (const key of Object.keys(c.resources?.requests ?? {})) names.add(key);
  }
  return names;
}

/** Reads what a pod claims through DRA. Pure: claims, templates and classes come from the lookup. */
export function readPodDra(pod: KubePod, namespace: string, policy: Policy, lookup: DraLookup): PodDra {
  const entries = podClaims(pod);
  const names = resourceNames(pod);
  if (entries.length === 0 && ![...names].some((n) => !isGpuResource(n) && n.includes('/'))) return NO_POD_DRA;
  const claims: PodClaimSource[] = [];
  const unresolved: string[] = [];
  const malformed: string[] = [];
  const generated = new Map(claimStatuses(pod).map((s) => [s.name ?? '', s.resourceClaimName ?? null]));
  for (const e of entries) {
    const name = e?.name ?? '';
    const where = `spec.resourceClaims[${name}]`;
    const made = generated.get(name);
    const madeClaim = made ? lookup.resourceClaim(namespace, made) : undefined;
    let spec: ResourceClaimSpec | undefined;
    let source: Omit<PodClaimSource, 'requests'> | null = null;
    if (madeClaim) {
      spec = madeClaim.spec;
      source = { podClaim: name, kind: 'ResourceClaim', objectName: made!, shared: false, claim: madeClaim };
    } else if (e?.resourceClaimName) {
      const claim = lookup.resourceClaim(namespace, e.resourceClaimName);
      if (claim) {
        spec = claim.spec;
        source = { podClaim: name, kind: 'ResourceClaim', objectName: e.resourceClaimName, shared: true, claim };
      } else
        unresolved.push(
          `${where} names ResourceClaim ${e.resourceClaimName}, which does not exist in namespace ${namespace} (or Tessera has not seen it yet), so Tessera cannot tell which devices it asks for; create the claim first, then the pod`,
        );
    } else if (e?.resourceClaimTemplateName) {
      const template = lookup.resourceClaimTemplate(namespace, e.resourceClaimTemplateName);
      if (template) {
        spec = template.spec?.spec;
        source = {
          podClaim: name,
          kind: 'ResourceClaimTemplate',
          objectName: e.resourceClaimTemplateName,
          shared: false,
        };
      } else
        unresolved.push(
          `${where} names ResourceClaimTemplate ${e.resourceClaimTemplateName}, which does not exist in namespace ${namespace} (or Tessera has not seen it yet), so Tessera cannot tell which devices it asks for; create the template first, then the pod`,
        );
    }
    if (source) {
      const requests = readClaimSpec(spec, policy, lookup, malformed).map((r) => ({
        ...r,
        alternatives: r.alternatives.map((a) => ({ ...a, label: `${source.kind} ${source.objectName} ${a.label}` })),
      }));
      claims.push({ ...source, requests });
    }
  }
  const extended: { resource: string; request: RequestReading }[] = [];
  for (const resource of [...names].sort()) {
    if (isGpuResource(resource)) continue;
    const className = classOfExtendedResource(resource, lookup);
    if (className === null) continue;
    const reach = classReach(className, policy, lookup);
    if (reach !== 'gpu') continue;
    let count = 0;
    try {
      count = effectiveRequest(pod, resource, wholeCount);
    } catch {
      malformed.push(`${resource}: not a whole number of devices`);
    }
    if (count <= 0) continue;
    const facts = selectorFacts(lookup.deviceClass(className)?.spec?.selectors);
    const kind = facts.profile !== null || className === 'mig.nvidia.com' || facts.mig ? 'mig' : 'gpu';
    const alt: Alternative = {
      label: `extended resource ${resource} (DeviceClass ${className})`,
      className,
      reach,
      gpu: true,
      count,
      all: false,
      adminAccess: false,
      kind,
      profile: kind === 'mig' ? facts.profile : null,
      memoryMiB: null,
    };
    extended.push({ resource, request: { name: resource, alternatives: [alt] } });
  }
  const gpuClaimNames = new Set(claims.filter((c) => asksForGpus(c.requests)).map((c) => c.podClaim));
  return {
    claims,
    unresolved,
    extended,
    malformed,
    gpu: gpuClaimNames.size > 0 || extended.length > 0,
    gpuClaimNames,
  };
}

/** Every GPU request of the pod, claims and extended resources. */
export function podRequests(dra: PodDra): RequestReading[] {
  return [...dra.claims.flatMap((c) => c.requests), ...dra.extended.map((e) => e.request)];
}

/** Key of a shared ResourceClaim, for counting its devices once across the pods that name it. */
export const sharedClaimKey = (namespace: string, name: string): string => `${namespace}/${name}`;

export interface DraEquivalents {
  /** What the pod alone holds: template claims and extended resources. */
  readonly own: number;
  /** Named ResourceClaims (key -> equivalents), which several pods may share. */
  readonly shared: ReadonlyMap<string, number>;
}

export function podDraEquivalents(dra: PodDra, namespace: string, pool: Pool | null): DraEquivalents {
  let own = 0;
  const shared = new Map<string, number>();
  for (const c of dra.claims) {
    const eq = requestsEquivalents(c.requests, pool);
    if (c.shared) shared.set(sharedClaimKey(namespace, c.objectName), eq);
    else own += eq;
  }
  for (const e of dra.extended) own += requestsEquivalents([e.request], pool);
  return { own, shared };
}
