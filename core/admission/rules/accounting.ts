// The paths around Tessera's GPU accounting, closed whatever the policy says: a GPU pod must reach Tessera's scheduler
// (no nodeName, no other schedulerName), and nobody may choose the visible GPUs themselves (NVIDIA_VISIBLE_DEVICES, or
// the node-side doors of node-doors.ts: device-list volume mounts and device-injection annotations).

import type { KubeContainer } from '../../kube-objects.ts';
import { VISIBLE_DEVICES } from '../../well-known-names.ts';
import { BUILTIN, type PodCheck, type Violation } from '../check.ts';
import { allContainers, VISIBLE_DEVICES_ENV } from '../pod-edits.ts';
import { nodeDoorProblems } from './node-doors.ts';
import { vclusterOf, virtualSchedulerDenial } from '../vcluster.ts';

const TESSERA_WIRING = `metadata.annotations['${VISIBLE_DEVICES}']`;

/** NVIDIA_VISIBLE_DEVICES is Tessera's: "void" on non-GPU containers, the downward-API wiring on fraction GPU containers. */
export function userSetVisibleDevices(c: KubeContainer): boolean {
  return (c.env ?? []).some((e) => {
    if (e.name !== VISIBLE_DEVICES_ENV) return false;
    if (e.value === 'void' && e.valueFrom === undefined) return false;
    const fieldPath = (e.valueFrom as { fieldRef?: { fieldPath?: string } } | undefined)?.fieldRef?.fieldPath;
    return !(e.value === undefined && fieldPath === TESSERA_WIRING);
  });
}

export const accountingCheck: PodCheck = (s, ctx) => {
  const out: Violation[] = [];
  const deny = (message: string) =>
    out.push({ rule: BUILTIN.accounting, action: 'enforce', message: `${s.where}${message}` });
  const spec = s.pod.spec ?? {};
  if (s.gpu && !s.template && ctx.operation === 'CREATE' && spec.nodeName) {
    const vcluster = vclusterOf(s.pod);
    deny(
      vcluster !== null
        ? virtualSchedulerDenial(vcluster, spec.nodeName, ctx.policy.schedulerName)
        : `spec.nodeName=${spec.nodeName} bypasses the scheduler and Tessera's GPU accounting; remove nodeName and use tessera.io/pool or node affinity`,
    );
  }
  if (
    s.gpu &&
    spec.schedulerName &&
    spec.schedulerName !== ctx.policy.schedulerName &&
    spec.schedulerName !== 'default-scheduler'
  ) {
    deny(
      `schedulerName ${spec.schedulerName} is not Tessera's (${ctx.policy.schedulerName}); GPU pods must be scheduled by ${ctx.policy.schedulerName}. Remove schedulerName`,
    );
  }
  if (s.gpu && !s.template && spec.schedulerName === 'default-scheduler') {
    deny(
      `GPU pods are scheduled by ${ctx.policy.schedulerName}, but this one still names default-scheduler; the mutating webhook did not run. Check the MutatingWebhookConfiguration`,
    );
  }
  for (const c of allContainers(spec)) {
    if (userSetVisibleDevices(c)) {
      deny(
        `container ${c.name} sets ${VISIBLE_DEVICES_ENV}, which chooses GPUs behind Tessera's back; remove it (Tessera wires it)`,
      );
    }
  }
  for (const problem of nodeDoorProblems(s.pod, allContainers(spec))) deny(problem);
  return out;
};
