// The slices of resource.k8s.io/v1 objects (Dynamic Resource Allocation, GA in Kubernetes 1.34) that the core reads,
// checked against k8s.io/api v0.37.2 resource/v1/types.go. Structural and all-optional, like kube-objects.ts: the
// core receives whatever the API server, an informer (list objects are the client's models, watch objects raw JSON)
// or a context file sends, and must never crash on a missing field.

import type { ObjectMeta } from '../kube-objects.ts';

export type Quantity = string | number;

/** DeviceSelector: exactly one field, a CEL expression over `device` (driver, attributes, capacity, ...). */
export interface DeviceSelector {
  cel?: { expression?: string } | null;
}

/** ExactDeviceRequest, and DeviceSubRequest (a firstAvailable alternative, which also has a name). */
export interface ExactDeviceRequest {
  name?: string;
  deviceClassName?: string;
  selectors?: DeviceSelector[] | null;
  /** ExactCount (default) or All. */
  allocationMode?: string;
  /** Defaults to 1 in ExactCount mode. */
  count?: number;
  adminAccess?: boolean | null;
  /** Consumable capacity (KEP-5075): what the request takes of each capacity of a shareable device. */
  capacity?: { requests?: Record<string, Quantity> | null } | null;
}

export interface DeviceRequest {
  name?: string;
  exactly?: ExactDeviceRequest | null;
  firstAvailable?: ExactDeviceRequest[] | null;
}

export interface ResourceClaimSpec {
  devices?: { requests?: DeviceRequest[] | null } | null;
}

export interface DeviceRequestAllocationResult {
  request?: string;
  driver?: string;
  pool?: string;
  device?: string;
  adminAccess?: boolean | null;
  shareID?: string | null;
  consumedCapacity?: Record<string, Quantity> | null;
}

export interface KubeResourceClaim {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: ResourceClaimSpec;
  status?: {
    allocation?: {
      devices?: { results?: DeviceRequestAllocationResult[] | null } | null;
      nodeSelector?: unknown;
    } | null;
    reservedFor?: { resource?: string; name?: string; uid?: string }[] | null;
  } | null;
}

export interface KubeResourceClaimTemplate {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: { metadata?: ObjectMeta; spec?: ResourceClaimSpec } | null;
}

export interface KubeDeviceClass {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta & { creationTimestamp?: string | Date };
  spec?: { selectors?: DeviceSelector[] | null; extendedResourceName?: string | null } | null;
}

/** A device attribute: exactly one typed value (the client's models spell `int` as `_int`). */
export interface DeviceAttribute {
  string?: string;
  int?: number;
  _int?: number;
  bool?: boolean;
  version?: string;
}

export interface SliceDevice {
  name?: string;
  attributes?: Record<string, DeviceAttribute> | null;
  capacity?: Record<string, { value?: Quantity }> | null;
  allowMultipleAllocations?: boolean | null;
  consumesCounters?: { counterSet?: string; counters?: Record<string, { value?: Quantity }> }[] | null;
}

export interface KubeResourceSlice {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: {
    driver?: string;
    pool?: { name?: string; generation?: number; resourceSliceCount?: number } | null;
    nodeName?: string | null;
    devices?: SliceDevice[] | null;
    sharedCounters?: { name?: string; counters?: Record<string, { value?: Quantity }> }[] | null;
  } | null;
}

/** pod.spec.resourceClaims[]: exactly one of resourceClaimName and resourceClaimTemplateName. */
export interface PodResourceClaim {
  name: string;
  resourceClaimName?: string | null;
  resourceClaimTemplateName?: string | null;
}

/** pod.status.resourceClaimStatuses[]: the claim generated from a template. */
export interface PodResourceClaimStatus {
  name?: string;
  resourceClaimName?: string | null;
}
