// DRA objects (resource.k8s.io/v1) from the API, for the CLI and the servers: DeviceClasses, ResourceClaims,
// ResourceClaimTemplates and ResourceSlices, each as a WatchedResource or listed once with its kind set.

import { type KubeConfig, ResourceV1Api } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { WatchedResource } from './watched-resource.ts';

export type DraResource = 'deviceclasses' | 'resourceclaims' | 'resourceclaimtemplates' | 'resourceslices';

const PATHS: Record<DraResource, string> = {
  deviceclasses: '/apis/resource.k8s.io/v1/deviceclasses',
  resourceclaims: '/apis/resource.k8s.io/v1/resourceclaims',
  resourceclaimtemplates: '/apis/resource.k8s.io/v1/resourceclaimtemplates',
  resourceslices: '/apis/resource.k8s.io/v1/resourceslices',
};

const KINDS: Record<DraResource, string> = {
  deviceclasses: 'DeviceClass',
  resourceclaims: 'ResourceClaim',
  resourceclaimtemplates: 'ResourceClaimTemplate',
  resourceslices: 'ResourceSlice',
};

function lister(kc: KubeConfig, resource: DraResource) {
  const api = kc.makeApiClient(ResourceV1Api);
  switch (resource) {
    case 'deviceclasses':
      return () => api.listDeviceClass();
    case 'resourceclaims':
      return () => api.listResourceClaimForAllNamespaces();
    case 'resourceclaimtemplates':
      return () => api.listResourceClaimTemplateForAllNamespaces();
    case 'resourceslices':
      return () => api.listResourceSlice();
  }
}

// biome-ignore lint/suspicious/noExplicitAny: the informer's element type is the client's model, read structurally
type AnyObject = any;

export type DraWatch = WatchedResource<AnyObject>;

export function watchDra(kc: KubeConfig, resource: DraResource, log: Logger): DraWatch {
  return new WatchedResource<AnyObject>(kc, PATHS[resource], lister(kc, resource), log, resource);
}

/**
 * Lists DeviceClasses, ResourceClaims and ResourceClaimTemplates (and ResourceSlices, with `slices`) once; none when
 * the API does not serve them.
 */
export async function listDraObjects(kc: KubeConfig, slices = false): Promise<unknown[]> {
  const out: unknown[] = [];
  const resources: DraResource[] = ['deviceclasses', 'resourceclaims', 'resourceclaimtemplates'];
  if (slices) resources.push('resourceslices');
  for (const resource of resources) {
    try {
      const list = await lister(kc, resource)();
      for (const item of list.items) out.push({ ...item, kind: KINDS[resource] });
    } catch {
      // resource.k8s.io/v1 not served (a cluster before 1.34): nothing to read
    }
  }
  return out;
}
