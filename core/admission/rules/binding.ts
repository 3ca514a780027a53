// Bindings (the pods/binding subresource, and the older namespaced `bindings` resource) set a pod's spec.nodeName and
// copy the Binding's annotations (and, with PodTopologyLabelsAdmission, its labels) onto the pod in the same write.
// That is how Tessera's extender commits a placement with its assignment. Anyone else could use the same door to bind
// a GPU pod around the extender's accounting, or to write system-owned annotations after admission (a visible-devices
// value read through the downward API chooses the GPUs). So only Tessera's own identities may bind a GPU pod or carry
// system-owned names in a Binding; Bindings of other pods without them (kube-scheduler, other schedulers) pass.

import { parseDemand, wantsGpu } from '../../demand.ts';
import { NO_DRA } from '../../dra/lookup.ts';
import { DRA_CLAIMS_RESOURCE } from '../../dra/names.ts';
import { DEVICES_MARKER } from '../../pools/device-plan.ts';
import { readPodDra } from '../../dra/pod-claims.ts';
import type { KubePod, ObjectMeta } from '../../kube-objects.ts';
import { POLICY_REVISION, SYSTEM_OWNED_ANNOTATIONS, TENANT_LABEL } from '../../well-known-names.ts';
import { BUILTIN, type CheckContext, type Violation } from '../check.ts';
import type { AdmissionRequest } from '../request.ts';

export interface KubeBinding {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  target?: { apiVersion?: string; kind?: string; name?: string };
}

/** Whether a review is of a Binding: CREATE of pods/binding, or of the namespaced `bindings` resource. */
export function isBindingRequest(req: AdmissionRequest): boolean {
  return req.kind?.group === '' && req.kind.kind === 'Binding';
}

/** The pod a Binding request binds, and the UID precondition when the binder set one. */
export interface BindingTarget {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | null;
  readonly node: string;
}

export function bindingTarget(req: AdmissionRequest): BindingTarget {
  const binding = (req.object ?? {}) as KubeBinding;
  return {
    namespace: req.namespace || binding.metadata?.namespace || '',
    // pods/binding: the API server has checked that the URL's pod name is the Binding's name.
    name: binding.metadata?.name || req.name || '',
    uid: binding.metadata?.uid || null,
    node: binding.target?.name ?? '',
  };
}

/**
 * What a pod asks of GPUs, for a message (and the extended resources among it); null for a pod that asks for none. A
 * GPU pod is what pod admission takes for one: GPU resources or intent, or DRA claims and extended resources that
 * reach GPUs.
 */
function gpuAsk(
  pod: KubePod,
  namespace: string,
  ctx: CheckContext,
): { readonly text: string; readonly resources: readonly string[] } | null {
  const parsed = parseDemand(pod, ctx.policy.accelerators);
  if (!parsed.ok)
    return {
      text: `a GPU request Tessera cannot read (${parsed.error.field}: ${parsed.error.message})`,
      resources: [],
    };
  const dra = readPodDra(pod, namespace, ctx.policy, ctx.view.dra ?? NO_DRA);
  if (!wantsGpu(parsed.demand) && !dra.gpu) return null;
  const asked = [...new Set([...Object.keys(parsed.demand.gpuResources), ...dra.extended.map((e) => e.resource)])];
  asked.sort();
  const parts = [...asked];
  if (dra.gpuClaimNames.size > 0) parts.push(`GPU claims (${[...dra.gpuClaimNames].sort().join(', ')})`);
  // What would make kube-scheduler ask the extender: the names it can manage (never kubernetes.io ones), and the
  // marker the webhook puts on pods that reach GPUs through claims.
  const resources = asked.filter((r) => !r.includes('kubernetes.io/'));
  if (dra.gpuClaimNames.size > 0) resources.push(DRA_CLAIMS_RESOURCE);
  if (Object.keys(parsed.demand.devices).length > 0) resources.push(DEVICES_MARKER);
  return { text: parts.length > 0 ? parts.join(', ') : 'GPUs through tessera.io annotations', resources };
}

/**
 * Every violation of a Binding. `pod` is the pod being bound as the API server has it (the webhook reads it from its
 * informer cache, or from the API when the cache does not have it yet); undefined when no such pod exists, in which
 * case the API server refuses the Binding itself.
 */
export function bindingViolations(
  binding: KubeBinding,
  target: BindingTarget,
  pod: KubePod | undefined,
  ctx: CheckContext,
): Violation[] {
  if (ctx.system) return [];
  const out: Violation[] = [];
  const who = ctx.user.username ?? 'an anonymous user';
  const subject = `the Binding of pod ${target.namespace}/${target.name}`;
  const annotations = binding.metadata?.annotations ?? {};
  for (const key of SYSTEM_OWNED_ANNOTATIONS) {
    if (annotations[key] === undefined) continue;
    const owner =
      key === POLICY_REVISION
        ? 'Tessera stamps at admission'
        : "only Tessera's extender writes, in its own Binding when it commits a placement";
    out.push({
      rule: BUILTIN.systemOwned,
      action: 'enforce',
      message: `${subject} sets annotation ${key}, which ${owner}; ${who} may not. Remove it from the Binding`,
    });
  }
  if (binding.metadata?.labels?.[TENANT_LABEL] !== undefined) {
    out.push({
      rule: BUILTIN.tenancy,
      action: 'enforce',
      message: `${subject} sets label ${TENANT_LABEL}, which Tessera sets at admission from the namespace's tenant; remove it from the Binding`,
    });
  }
  const ask = pod === undefined ? null : gpuAsk(pod, target.namespace, ctx);
  if (ask !== null) {
    const managed =
      ask.resources.length === 0
        ? ''
        : ` If kube-scheduler sent this Binding itself, it did not ask the extender: list ${ask.resources.join(', ')} in the extender's managedResources`;
    out.push({
      rule: BUILTIN.accounting,
      action: 'enforce',
      message: `pod ${target.namespace}/${target.name} asks for ${ask.text}, so only Tessera's extender may bind it (it commits the GPU assignment in the same write); ${who} may not. Leave the pod to ${ctx.policy.schedulerName}.${managed}`,
    });
  }
  return out;
}
