// KubeVirt's VirtualMachineInstance and VirtualMachine (kubevirt.io/v1), the parts Tessera reads, and the launcher pod
// virt-controller will render from a VMI. Checking that pod at the VMI's (or the VM template's) own admission gives
// the user Tessera's denial synchronously, instead of a FailedCreate event on the VMI later.
//
// The rendering follows kubevirt/kubevirt pkg/virt-controller/services:
// - renderresources.go: WithGPUsDevicePlugins and WithHostDevicesDevicePlugins add 1 of resource <deviceName> to the
//   compute container's requests and limits for each gpus[] / hostDevices[] entry with a deviceName and no claim;
//   WithGPUsDRA / WithHostDevicesDRA name the entry's claim (claimName, requestName) in the container instead;
//   Limits()/Requests() then lay spec.domain.resources over what was calculated (the VMI's own values win);
// - template.go: podLabels (the VMI's labels, kubevirt.io=virt-launcher, kubevirt.io/created-by=<VMI uid>),
//   generatePodAnnotations (the VMI's annotations but kubectl.kubernetes.io* and *-observed-api-version), the VMI as
//   controller owner, and nodeSelector, affinity, tolerations, schedulerName, priorityClassName and resourceClaims
//   copied from the VMI's spec; the compute container is the first container.

import type { KubeContainer, KubePod, ResourceList } from '../kube-objects.ts';
import { CREATED_BY_LABEL, KUBEVIRT_APP_LABEL, LAUNCHER_APP, VMI_KIND } from './launcher.ts';

export const KUBEVIRT_GROUP = 'kubevirt.io';

/** A gpus[] or hostDevices[] entry: by device-plugin resource (deviceName), or by DRA claim (claimName). */
export interface VmDevice {
  name?: string;
  deviceName?: string;
  claimName?: string;
  requestName?: string;
  [key: string]: unknown;
}

export interface VmiSpec {
  domain?: {
    devices?: { gpus?: VmDevice[] | null; hostDevices?: VmDevice[] | null; [key: string]: unknown } | null;
    resources?: { requests?: ResourceList | null; limits?: ResourceList | null; [key: string]: unknown } | null;
    [key: string]: unknown;
  } | null;
  nodeSelector?: Record<string, string> | null;
  affinity?: unknown;
  tolerations?: unknown[] | null;
  schedulerName?: string;
  priorityClassName?: string;
  resourceClaims?: unknown[] | null;
  [key: string]: unknown;
}

export interface VmMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string> | null;
  annotations?: Record<string, string> | null;
}

/** The VMI-shaped part of a VMI (the object) or a VirtualMachine (its spec.template), with where it sits. */
export interface VmiView {
  readonly kind: 'VirtualMachineInstance' | 'VirtualMachine';
  readonly meta: VmMeta;
  readonly spec: VmiSpec;
  /** JSON path prefix of the VMI-shaped part, for messages ("" for a VMI, "spec.template." for a VM). */
  readonly where: string;
}

export function isVmKind(kind: string | undefined): kind is 'VirtualMachineInstance' | 'VirtualMachine' {
  return kind === 'VirtualMachineInstance' || kind === 'VirtualMachine';
}

/** The VMI-shaped part of a reviewed object, or null when there is none (a VM without a template). */
export function vmiView(kind: 'VirtualMachineInstance' | 'VirtualMachine', obj: unknown): VmiView | null {
  if (typeof obj !== 'object' || obj === null) return null;
  const o = obj as { metadata?: VmMeta; spec?: { template?: { metadata?: VmMeta; spec?: VmiSpec } } & VmiSpec };
  if (kind === 'VirtualMachineInstance')
    return { kind, meta: o.metadata ?? {}, spec: o.spec ?? {}, where: `${kind} ${o.metadata?.name ?? ''}: ` };
  const template = o.spec?.template;
  if (typeof template !== 'object' || template === null) return null;
  return {
    kind,
    meta: template.metadata ?? {},
    spec: template.spec ?? {},
    where: `${kind} ${o.metadata?.name ?? ''} spec.template: `,
  };
}

/** A VMI's gpus[] or hostDevices[] as a list of objects, whatever the reviewed object holds there. */
export function deviceList(value: unknown): VmDevice[] {
  return Array.isArray(value) ? value.filter((d): d is VmDevice => typeof d === 'object' && d !== null) : [];
}

/** The device-plugin devices a VMI asks for: 1 of each gpus[] and hostDevices[] deviceName without a claim. */
export function vmiDevices(spec: VmiSpec): Record<string, number> {
  const out: Record<string, number> = {};
  const devices = spec.domain?.devices;
  for (const d of [...deviceList(devices?.gpus), ...deviceList(devices?.hostDevices)]) {
    if (typeof d.deviceName !== 'string' || d.deviceName === '' || d.claimName !== undefined) continue;
    out[d.deviceName] = (out[d.deviceName] ?? 0) + 1;
  }
  return out;
}

function filteredAnnotations(annotations: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(annotations)) {
    if (
      k.startsWith('kubectl.kubernetes.io') ||
      k.startsWith('kubevirt.io/storage-observed-api-version') ||
      k.startsWith('kubevirt.io/latest-observed-api-version')
    )
      continue;
    out[k] = v;
  }
  return out;
}

/**
 * The launcher pod virt-controller would create for the VMI (the parts Tessera checks). `uid` is the VMI's (unknown
 * for a VirtualMachine's template, whose launcher then has no VM identity yet).
 */
export function launcherPodOf(view: VmiView, namespace: string): KubePod {
  const spec = view.spec;
  const devices = vmiDevices(spec);
  const own = (list: unknown): ResourceList =>
    typeof list === 'object' && list !== null && !Array.isArray(list) ? (list as ResourceList) : {};
  const requests: ResourceList = { ...devices, ...own(spec.domain?.resources?.requests) };
  const limits: ResourceList = { ...devices, ...own(spec.domain?.resources?.limits) };
  const claims: { name: string; request?: string }[] = [];
  const all = [...deviceList(spec.domain?.devices?.gpus), ...deviceList(spec.domain?.devices?.hostDevices)];
  for (const d of all)
    if (typeof d.claimName === 'string' && d.claimName !== '')
      claims.push(
        typeof d.requestName === 'string' ? { name: d.claimName, request: d.requestName } : { name: d.claimName },
      );
  const compute: KubeContainer = {
    name: 'compute',
    resources: { requests, limits, ...(claims.length > 0 ? { claims } : {}) },
  };
  const uid = view.kind === 'VirtualMachineInstance' ? view.meta.uid : undefined;
  const name = view.meta.name ?? '';
  return {
    metadata: {
      name: `virt-launcher-${name}`,
      namespace,
      labels: {
        ...(view.meta.labels ?? {}),
        [KUBEVIRT_APP_LABEL]: LAUNCHER_APP,
        ...(uid ? { [CREATED_BY_LABEL]: uid } : {}),
      },
      annotations: { ...filteredAnnotations(view.meta.annotations ?? {}), 'kubevirt.io/domain': name },
      ...(uid ? { ownerReferences: [{ kind: VMI_KIND, name, uid, controller: true }] } : {}),
    },
    spec: {
      containers: [compute],
      ...(spec.nodeSelector ? { nodeSelector: spec.nodeSelector } : {}),
      ...(spec.affinity ? { affinity: spec.affinity as Record<string, unknown> } : {}),
      ...(spec.tolerations ? { tolerations: spec.tolerations as never } : {}),
      ...(spec.schedulerName ? { schedulerName: spec.schedulerName } : {}),
      ...(spec.priorityClassName ? { priorityClassName: spec.priorityClassName } : {}),
      ...(spec.resourceClaims ? { resourceClaims: spec.resourceClaims as never } : {}),
    },
  };
}
