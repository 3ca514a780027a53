// The slices of Kubernetes objects that the core reads. Structural and all-optional, because the core receives
// whatever the API server, a snapshot file or a test sends, and must never crash on a missing field.

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string> | null;
  annotations?: Record<string, string> | null;
  deletionTimestamp?: string | null;
  ownerReferences?: { kind?: string; name?: string; uid?: string; controller?: boolean }[] | null;
}

export type ResourceList = Record<string, string | number>;

export interface Taint {
  key: string;
  value?: string;
  effect: string;
}

export interface KubeNode {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: { unschedulable?: boolean; taints?: Taint[] | null };
  status?: { allocatable?: ResourceList | null; capacity?: ResourceList | null };
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}

export interface KubeContainer {
  name: string;
  image?: string;
  env?: EnvVar[] | null;
  envFrom?: unknown[] | null;
  resources?: {
    requests?: ResourceList | null;
    limits?: ResourceList | null;
    /** DRA: entries of spec.resourceClaims (and a request in the claim) this container uses. */
    claims?: { name: string; request?: string }[] | null;
  } | null;
  securityContext?: { privileged?: boolean | null; [key: string]: unknown } | null;
  volumeMounts?: { name: string; mountPath: string }[] | null;
  /** `Always` marks a sidecar (restartable init container), which runs beside the app containers. */
  restartPolicy?: string;
}

export interface Toleration {
  key?: string;
  operator?: string;
  value?: string;
  effect?: string;
  tolerationSeconds?: number;
}

export interface PodSpec {
  nodeName?: string;
  schedulerName?: string;
  priorityClassName?: string;
  /** Resolved from the priority class by the API server's admission. */
  priority?: number;
  runtimeClassName?: string | null;
  hostIPC?: boolean;
  hostPID?: boolean;
  hostNetwork?: boolean;
  containers?: KubeContainer[] | null;
  initContainers?: KubeContainer[] | null;
  ephemeralContainers?: KubeContainer[] | null;
  overhead?: ResourceList | null;
  tolerations?: Toleration[] | null;
  nodeSelector?: Record<string, string> | null;
  affinity?: Record<string, unknown> | null;
  volumes?: { name: string; hostPath?: { path: string; type?: string } | null; [key: string]: unknown }[] | null;
  /** DRA: the claims the pod uses, each by ResourceClaim or ResourceClaimTemplate name. */
  resourceClaims?:
    | { name: string; resourceClaimName?: string | null; resourceClaimTemplateName?: string | null }[]
    | null;
}

export interface KubePod {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: PodSpec;
  status?: { phase?: string; nominatedNodeName?: string; [key: string]: unknown };
}

export interface KubeNamespace {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}
