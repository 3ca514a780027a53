// The node-side ways to choose GPUs around Tessera, closed in every pod the webhook sees (like a user-set
// NVIDIA_VISIBLE_DEVICES): volume mounts that the NVIDIA container runtime reads as a device list, and pod annotations
// that ask a node component (a CDI-aware runtime, an NRI plugin) to inject devices or mounts. What each reader reads,
// and from where, is in the README ("Doors on the node").

import type { KubeContainer, KubePod } from '../../kube-objects.ts';

/**
 * The NVIDIA container toolkit's DeviceListAsVolumeMountsRoot. With accept-nvidia-visible-devices-as-volume-mounts it
 * takes every OCI mount whose cleaned destination starts with this string (a plain string prefix, no separator needed)
 * as a device request: the rest of the path names the device (`all`, an index, a UUID, `cdi/...`, `imex/...`).
 */
export const DEVICE_LIST_ROOT = '/var/run/nvidia-container-devices';

/** The same directory where /var/run is a symlink to /run (nearly every image); the toolkit compares the literal path. */
const DEVICE_LIST_ROOT_VIA_RUN = '/run/nvidia-container-devices';

/**
 * A container path as the runtime receives it: the kubelet makes a relative mountPath absolute, and the toolkit cleans
 * the destination (Go's filepath.Clean: no empty or `.` segments, `..` removes the previous one and stops at /).
 */
export function cleanMountPath(path: string): string {
  const parts: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') parts.pop();
    else parts.push(segment);
  }
  return `/${parts.join('/')}`;
}

/** Whether a mount destination is read (or would be, through /run) as an NVIDIA device list. */
export function isDeviceListMount(mountPath: string): boolean {
  const clean = cleanMountPath(mountPath);
  return clean.startsWith(DEVICE_LIST_ROOT) || clean.startsWith(DEVICE_LIST_ROOT_VIA_RUN);
}

interface InjectionDomain {
  /** The annotation key itself, or its prefix before `/`. */
  readonly domain: string;
  /** Who reads it, for the message. */
  readonly reader: string;
  readonly injects: 'devices' | 'mounts';
}

/**
 * Pod annotation domains that make a node component inject devices or mounts. A key is the domain itself or starts
 * with `<domain>/` (`<domain>/pod`, `<domain>/container.<name>`, or CDI's `cdi.k8s.io/<anything>`).
 */
export const INJECTION_DOMAINS: readonly InjectionDomain[] = [
  { domain: 'cdi.k8s.io', reader: 'a CDI-aware container runtime', injects: 'devices' },
  { domain: 'nvidia.cdi.k8s.io', reader: "the NVIDIA container toolkit's NRI plugin", injects: 'devices' },
  { domain: 'cdi-devices.nri.io', reader: 'the NRI device injector', injects: 'devices' },
  { domain: 'cdi-devices.noderesource.dev', reader: 'the NRI device injector', injects: 'devices' },
  { domain: 'devices.nri.io', reader: 'the NRI device injector', injects: 'devices' },
  { domain: 'devices.noderesource.dev', reader: 'the NRI device injector', injects: 'devices' },
  { domain: 'mounts.nri.io', reader: 'the NRI device injector', injects: 'mounts' },
  { domain: 'mounts.noderesource.dev', reader: 'the NRI device injector', injects: 'mounts' },
];

export function injectionDomainOf(key: string): InjectionDomain | undefined {
  return INJECTION_DOMAINS.find((d) => key === d.domain || key.startsWith(`${d.domain}/`));
}

const ASK = 'ask for GPUs with tessera.io/gpu-fraction, tessera.io/gpu-count or nvidia.com/gpu instead';

/** What is wrong in one pod (or pod template), one message per door, each saying what to remove and why. */
export function nodeDoorProblems(pod: KubePod, containers: readonly KubeContainer[]): string[] {
  const out: string[] = [];
  for (const c of containers) {
    for (const m of c.volumeMounts ?? []) {
      const path = typeof m.mountPath === 'string' ? m.mountPath : '';
      if (!isDeviceListMount(path)) continue;
      const clean = cleanMountPath(path);
      const shown = clean === path ? path : `${path} (${clean})`;
      const where = clean.startsWith(DEVICE_LIST_ROOT)
        ? `under ${DEVICE_LIST_ROOT}`
        : `under ${DEVICE_LIST_ROOT_VIA_RUN}, which is ${DEVICE_LIST_ROOT} in most images`;
      out.push(
        `container ${c.name} mounts volume ${m.name} at ${shown}, ${where}; the NVIDIA container runtime reads mounts there as a list of GPUs to expose, behind Tessera's back. Remove the mount and ${ASK}`,
      );
    }
  }
  for (const key of Object.keys(pod.metadata?.annotations ?? {}).sort()) {
    const d = injectionDomainOf(key);
    if (!d) continue;
    const what =
      d.injects === 'devices'
        ? "inject devices into the pod's containers, which can hand it any GPU of the node behind Tessera's back"
        : "add mounts to the pod's containers, which can expose the node's GPUs behind Tessera's back";
    out.push(`annotation ${key} asks ${d.reader} to ${what}. Remove the annotation and ${ASK}`);
  }
  return out;
}
