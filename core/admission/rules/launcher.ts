// virt-launcher pods, KubeVirt's carriers of a VM's devices. Two rules keep them honest:
// - only KubeVirt's virt-controller (or Tessera) may give a GPU pod a launcher's identity (labels kubevirt.io and
//   kubevirt.io/created-by with the VirtualMachineInstance as controller owner), on CREATE or later, since a VM's
//   launcher pods count once against quota (core/kubevirt/launcher.ts) and a forged identity would hide a pod's GPUs;
// - a launcher pod gets its VM's GPUs from the VirtualMachineInstance's devices: a tessera.io/gpu-fraction it carries
//   from a VMI whose admission did not turn it into a vGPU profile is denied rather than rewritten into a container
//   GPU request the VM cannot use.

import { vmOfPod } from '../../kubevirt/launcher.ts';
import { BUILTIN, type PodCheck, type PodSubject, type Violation } from '../check.ts';
import { DemandError } from '../../demand.ts';

export const launcherCheck: PodCheck = (s, ctx) => {
  if (s.template || !s.gpu) return [];
  const out: Violation[] = [];
  const deny = (message: string) =>
    out.push({ rule: BUILTIN.kubevirt, action: 'enforce', message: `${s.where}${message}` });
  const vm = vmOfPod(s.pod);
  const trusted = ctx.system || ctx.kubevirt === true;
  if (!trusted && vm !== null && (ctx.operation === 'CREATE' || vmOfPod(s.old ?? {}) !== vm))
    deny(
      `only KubeVirt's virt-controller gives a GPU pod the identity of a virt-launcher pod (label kubevirt.io=virt-launcher, kubevirt.io/created-by and a VirtualMachineInstance as controller owner), and ${ctx.user.username ?? 'this user'} is not it; remove them, or run the workload as a VirtualMachineInstance`,
    );
  if (vm !== null && fractionWithoutDevice(s))
    deny(
      `this virt-launcher pod carries tessera.io/gpu-fraction or gpu-memory from its VirtualMachineInstance but no vGPU device: a VM's GPUs are devices of its VMI (spec.domain.devices.gpus), chosen at the VMI's admission. Enable Tessera's KubeVirt webhook (chart value kubevirt.enabled, or the manifests/kubevirt component) so that the fraction picks a vGPU profile, or name the vGPU in spec.domain.devices.gpus[].deviceName`,
    );
  return out;
};

/** A VM (its launcher pod) that asks for a share of a GPU with annotations but carries no device to hold it. */
export function fractionWithoutDevice(s: PodSubject): boolean {
  if (s.demand instanceof DemandError || Object.keys(s.demand.devices).length > 0) return false;
  return s.demand.intent.milli !== null || s.demand.intent.memoryMiB !== null;
}
