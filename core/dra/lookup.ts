// What admission and scheduling may look up about DRA beyond the object under review: DeviceClasses, and the
// ResourceClaims and ResourceClaimTemplates that pods name. The webhook and the extender feed it from informers; the
// CLI from a context file.

import type { KubeDeviceClass, KubeResourceClaim, KubeResourceClaimTemplate } from './objects.ts';

export interface DraLookup {
  deviceClass(name: string): KubeDeviceClass | undefined;
  deviceClasses(): readonly KubeDeviceClass[];
  resourceClaim(namespace: string, name: string): KubeResourceClaim | undefined;
  resourceClaimTemplate(namespace: string, name: string): KubeResourceClaimTemplate | undefined;
}

export const NO_DRA: DraLookup = {
  deviceClass: () => undefined,
  deviceClasses: () => [],
  resourceClaim: () => undefined,
  resourceClaimTemplate: () => undefined,
};

const key = (namespace: string | undefined, name: string | undefined) => `${namespace ?? ''}/${name ?? ''}`;

/** A lookup over plain objects (CLI context files, tests): DeviceClasses, ResourceClaims and ResourceClaimTemplates. */
export function staticDraLookup(objects: readonly unknown[]): DraLookup {
  const classes = new Map<string, KubeDeviceClass>();
  const claims = new Map<string, KubeResourceClaim>();
  const templates = new Map<string, KubeResourceClaimTemplate>();
  for (const o of objects) {
    const kind = (o as { kind?: string } | null)?.kind;
    const meta = (o as { metadata?: { name?: string; namespace?: string } }).metadata;
    if (kind === 'DeviceClass') classes.set(meta?.name ?? '', o as KubeDeviceClass);
    else if (kind === 'ResourceClaim') claims.set(key(meta?.namespace, meta?.name), o as KubeResourceClaim);
    else if (kind === 'ResourceClaimTemplate')
      templates.set(key(meta?.namespace, meta?.name), o as KubeResourceClaimTemplate);
  }
  const all = [...classes.values()];
  return {
    deviceClass: (name) => classes.get(name),
    deviceClasses: () => all,
    resourceClaim: (namespace, name) => claims.get(key(namespace, name)),
    resourceClaimTemplate: (namespace, name) => templates.get(key(namespace, name)),
  };
}
