// KubeVirt's virt-launcher pods: the pod that carries a VirtualMachineInstance's devices, and the unit of Tessera's
// accounting for VMs. virt-controller labels it kubevirt.io=virt-launcher and kubevirt.io/created-by=<VMI uid> and
// makes the VMI its controller owner (kubevirt/kubevirt pkg/virt-controller/services/template.go podLabels and
// RenderLaunchManifest). A live migration adds a second launcher pod for the same VMI, labelled
// kubevirt.io/migrationJobUID (pkg/virt-controller/watch/migration/migration.go), which carries the same devices.

import type { KubePod } from '../kube-objects.ts';

export const KUBEVIRT_APP_LABEL = 'kubevirt.io';
export const LAUNCHER_APP = 'virt-launcher';
export const CREATED_BY_LABEL = 'kubevirt.io/created-by';
export const MIGRATION_JOB_LABEL = 'kubevirt.io/migrationJobUID';
export const VMI_KIND = 'VirtualMachineInstance';

/** The identities KubeVirt's virt-controller creates launcher pods as (the kubevirt and OpenShift installs). */
export const KUBEVIRT_CONTROLLER_USERS: readonly string[] = [
  'system:serviceaccount:kubevirt:kubevirt-controller',
  'system:serviceaccount:openshift-cnv:kubevirt-controller',
];

/**
 * The VM a launcher pod belongs to (`<namespace>/<VMI uid>`), or null for any other pod. Application-Aware Quota
 * finds launcher pods the same way: label kubevirt.io=virt-launcher and an owner reference to the VMI's uid
 * (kubevirt/application-aware-quota pkg/aaq-controller/built-in-usage-calculators/virt-launcher-usage-calc.go,
 * UnfinishedVMIPods).
 */
export function vmOfPod(pod: KubePod): string | null {
  const labels = pod.metadata?.labels ?? {};
  if (labels[KUBEVIRT_APP_LABEL] !== LAUNCHER_APP) return null;
  const uid = labels[CREATED_BY_LABEL];
  if (!uid) return null;
  const owned = (pod.metadata?.ownerReferences ?? []).some(
    (o) => o.kind === VMI_KIND && o.uid === uid && o.controller === true,
  );
  return owned ? `${pod.metadata?.namespace ?? ''}/${uid}` : null;
}

/**
 * What the launcher pods of one VM hold together: the most any of them holds. During a live migration the source and
 * the target pod each carry the VM's devices; AAQ charges the source in full and the target max(0, target - source),
 * which sums to this maximum, so a migrating VM is never charged twice and never less than either pod.
 */
export function vmCharge(members: Iterable<number>): number {
  let max = 0;
  for (const eq of members) if (eq > max) max = eq;
  return max;
}
