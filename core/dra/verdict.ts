// One pod on one node, for DRA: the extender's filter and prioritize on nodes whose GPUs a DRA driver publishes. The
// node must be the one an already allocated claim of the pod is on, hold a GPU model the pod allows, have the CPU and
// memory, and have room for the pod's GPU requests on its devices (core/dra/fit.ts); the score ranks it with the same
// binpack-and-fragmentation idea as the rest of the core. A pod without DRA demand on a node without DRA GPUs is not
// this module's business.

import { modelMatches } from '../catalog/gpu-models.ts';
import type { PodDemand } from '../demand.ts';
import { fit, type FitContext, type Placement } from '../fit.ts';
import type { NodeInventory } from '../inventory/node-inventory.ts';
import type { NodeUsage } from '../ledger.ts';
import { reason, type Reason } from '../reasons.ts';
import { nativeNeeds, type DraAsk } from './ask.ts';
import type { DraCluster } from './cluster.ts';
import { fitDra } from './fit.ts';

export type DraVerdict =
  | { readonly feasible: true; readonly score: number; readonly placement: Placement }
  | { readonly feasible: false; readonly reason: Reason };

/** Whether the node serves GPUs through a device plugin or Tessera's fractions (then DRA does not apply to it). */
function devicePluginGpus(node: NodeInventory): boolean {
  return node.mode !== 'none' || Object.keys(node.resources).length > 0;
}

/**
 * The DRA verdict for the pod on the node, or null when the node and the pod are not a DRA matter (the rest of the
 * core decides then).
 */
export function draVerdict(
  node: NodeInventory,
  usage: NodeUsage,
  demand: PodDemand,
  ask: DraAsk | null,
  cluster: DraCluster,
  ctx: FitContext,
  tenantOf: (namespace: string) => string | null,
  /** Claims whose devices count as free (preemption's victims would release them). */
  released: ReadonlySet<string> = new Set(),
): DraVerdict | null {
  const draNode = cluster.node(node.name);
  const native = draNode && !devicePluginGpus(node) && !ask?.extendedClaimAllocated ? nativeNeeds(demand) : [];
  const claimed = ask !== null && (ask.requests.length > 0 || ask.allocated.length > 0 || ask.unresolved.length > 0);
  if (!claimed && native.length === 0) return null;
  const fail = (r: Reason): DraVerdict => ({ feasible: false, reason: r });
  if (ask !== null && ask.unresolved.length > 0)
    return fail(reason('InvalidRequest', `the extender cannot see the pod's claims yet: ${ask.unresolved.join('; ')}`));
  for (const a of ask?.allocated ?? [])
    if (a.node !== node.name)
      return fail(
        reason(
          'ClaimElsewhere',
          `ResourceClaim ${a.claim} of the pod is allocated on node ${a.node}, not ${node.name}`,
        ),
      );
  if (!draNode)
    return fail(reason('NoGpus', `node ${node.name} publishes no GPUs through DRA (no ResourceSlice of a GPU driver)`));
  if (demand.models !== null && !demand.models.some((m) => draNode.model !== null && modelMatches(draNode.model, m)))
    return fail(
      reason(
        'ModelMismatch',
        `pod allows ${demand.models.join(' | ')}, node ${node.name} has ${draNode.model ?? 'an unknown model'}`,
      ),
    );
  const hostFit = fit(node, usage, { ...demand, gpuResources: {}, devices: {}, fraction: null }, ctx);
  if (!hostFit.ok) return fail(hostFit.reason);
  const placed = fitDra(draNode, cluster, [...native, ...(ask?.requests ?? [])], ctx, tenantOf, released);
  if (!placed.ok) return fail(placed.reason);
  return {
    feasible: true,
    score: placed.score,
    placement: { node: node.name, gpus: [], resources: {}, sharing: false, topology: 1 },
  };
}
