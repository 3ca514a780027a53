// How the agent's Allocate answer makes the assigned GPUs reach a container. The names are those of NVIDIA's device
// plugin device-list strategies (k8s-device-plugin cmd/nvidia-device-plugin/main.go --device-list-strategy) so that
// platform teams recognise them:
// - cdi-cri: ContainerAllocateResponse.cdi_devices with fully-qualified CDI names (GA in Kubernetes 1.31; containerd 2
//   and CRI-O inject them under plain runc, no nvidia runtime);
// - envvar: NVIDIA_VISIBLE_DEVICES=<UUIDs> in the response's envs, for nodes whose default runtime is nvidia's;
// - volume-mounts: /dev/null mounted at /var/run/nvidia-container-devices/<UUID>, read by the NVIDIA toolkit when
//   accept-nvidia-visible-devices-as-volume-mounts is on (k8s-device-plugin internal/plugin/server.go
//   updateResponseForDeviceMounts).

export const DELIVERY_MODES = ['cdi-cri', 'envvar', 'volume-mounts'] as const;
export type DeliveryMode = (typeof DELIVERY_MODES)[number];

export const ENFORCEMENT_KINDS = ['hami-core', 'mps', 'none'] as const;
export type EnforcementKind = (typeof ENFORCEMENT_KINDS)[number];

/** What the agent sees on its node, gathered by the shell. */
export interface NodeDeliveryFacts {
  /** Fully-qualified CDI device names in the spec directories (/etc/cdi, /var/run/cdi). */
  readonly cdiDevices: ReadonlySet<string>;
  /** The NVIDIA toolkit's config.toml says accept-nvidia-visible-devices-as-volume-mounts = true. */
  readonly toolkitAcceptsVolumeMounts: boolean;
}

export interface DeliveryChoice {
  readonly mode: DeliveryMode;
  /** Why this mode: the flag, the pool's policy, or what the node shows. */
  readonly because: string;
}

/**
 * The mode: the agent's --delivery flag wins, then the pool's policy (`delivery.mode`, which the webhook writes on the
 * pod as tessera.io/gpu-delivery), then what the node shows: CDI specs naming GPUs by UUID → cdi-cri; a toolkit that reads volume mounts → volume-mounts; else envvar.
 */
export function chooseDelivery(
  flag: DeliveryMode | 'auto',
  poolMode: DeliveryMode | 'auto' | null,
  facts: NodeDeliveryFacts,
  cdiKind: string,
  uuids: readonly string[],
): DeliveryChoice {
  if (flag !== 'auto') return { mode: flag, because: 'set by --delivery' };
  if (poolMode !== null && poolMode !== 'auto')
    return { mode: poolMode, because: "set by the node pool's delivery.mode" };
  if (uuids.length > 0 && uuids.every((u) => facts.cdiDevices.has(`${cdiKind}=${u}`)))
    return { mode: 'cdi-cri', because: `the node's CDI specs name every GPU as ${cdiKind}=<UUID>` };
  if (facts.toolkitAcceptsVolumeMounts)
    return { mode: 'volume-mounts', because: 'the NVIDIA toolkit accepts device lists as volume mounts' };
  return { mode: 'envvar', because: 'no CDI spec names the GPUs and the toolkit does not read volume mounts' };
}

/** The CDI device names a CDI spec file (JSON or YAML already parsed) declares: `<kind>=<device name>`. */
export function cdiDeviceNames(spec: unknown): string[] {
  const s = spec as { kind?: unknown; devices?: unknown } | null;
  if (!s || typeof s.kind !== 'string' || !Array.isArray(s.devices)) return [];
  const out: string[] = [];
  for (const d of s.devices as unknown[]) {
    const name = (d as { name?: unknown } | null)?.name;
    if (typeof name === 'string' && name !== '') out.push(`${s.kind}=${name}`);
  }
  return out;
}
