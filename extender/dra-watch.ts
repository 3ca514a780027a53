// The extender's DRA informers: DeviceClasses, ResourceClaims, ResourceClaimTemplates and ResourceSlices feed the
// scheduling state's DRA model (inventory from the slices, what is taken from the claims' allocations).

import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { SchedulingState } from '../core/scheduling/state.ts';
import { type DraWatch, watchDra } from '../server/dra-objects.ts';

/** The DRA informers, in the order they must sync (before pods, so that pods land with their claims resolved). */
export type DraWatches = readonly DraWatch[];

export function watchDraInto(kc: KubeConfig, state: SchedulingState, log: Logger): DraWatches {
  const classes = watchDra(kc, 'deviceclasses', log);
  const claims = watchDra(kc, 'resourceclaims', log);
  const templates = watchDra(kc, 'resourceclaimtemplates', log);
  const slices = watchDra(kc, 'resourceslices', log);
  const dra = state.dra;
  const name = (o: { metadata?: { name?: string } }) => o.metadata?.name ?? '';
  const ns = (o: { metadata?: { namespace?: string } }) => o.metadata?.namespace ?? '';
  for (const event of ['add', 'update'] as const) {
    classes.on(event, (c) => dra.upsertClass(c));
    claims.on(event, (c) => dra.upsertClaim(c));
    templates.on(event, (c) => dra.upsertTemplate(c));
    slices.on(event, (s) => dra.upsertSlice(s));
  }
  classes.on('delete', (c) => dra.removeClass(name(c)));
  claims.on('delete', (c) => dra.removeClaim(ns(c), name(c)));
  templates.on('delete', (c) => dra.removeTemplate(ns(c), name(c)));
  slices.on('delete', (s) => dra.removeSlice(name(s)));
  return [classes, claims, templates, slices];
}
