// No accelerator reaches a tenant unaccounted: in every namespace the webhook serves, a pod or workload template that
// asks for an accelerator resource (core/accelerators) that no pool maps is denied, with how to map it. Tessera's own
// GPU names are accounted by their pools; the devices pools list (deviceResources) by their weights.

import { DemandError } from '../../demand.ts';
import { unmappedDeviceMessage, unmappedDevices } from '../../pools/device-plan.ts';
import { BUILTIN, type PodCheck, type Violation } from '../check.ts';
import { allContainers } from '../pod-edits.ts';

export const acceleratorsCheck: PodCheck = (s, ctx) => {
  let asked: Record<string, number>;
  if (s.demand instanceof DemandError) {
    // Unreadable requests are denied on their own; name the accelerators among them all the same.
    asked = {};
    for (const c of allContainers(s.pod.spec ?? {}))
      for (const key of Object.keys({ ...(c.resources?.limits ?? {}), ...(c.resources?.requests ?? {}) }))
        if (ctx.policy.accelerators.isDevice(key)) asked[key] = 1;
  } else asked = { ...s.demand.devices };
  return unmappedDevices(asked, ctx.policy).map(
    (resource): Violation => ({
      rule: BUILTIN.accelerators,
      action: 'enforce',
      message: `${s.where}${unmappedDeviceMessage(resource, ctx.policy)}`,
    }),
  );
};
