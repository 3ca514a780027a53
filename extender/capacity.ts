// The fraction-capacity controller: nodes labelled tessera.io/sharing=fraction advertise tessera.io/gpu-milli, 1000
// per GPU counted by GFD, in their status, so that kube-scheduler's own resource check sees the shareable capacity.
// Where Tessera's node agent serves (node label tessera.io/node-agent=serving) the kubelet advertises gpu-milli from
// the agent's device plugin, with health; the controller leaves those nodes alone, so there is one writer.

import type { Logger } from 'pino';
import type { KubeNode } from '../core/kube-objects.ts';
import { GFD, GPU_MILLI, NODE_AGENT_LABEL, NODE_AGENT_SERVING, SHARING_LABEL } from '../core/well-known-names.ts';
import { parseQuantity } from '../core/quantity.ts';
import type { ClusterWriter } from './cluster-writer.ts';

/** The gpu-milli a node should advertise, or null when it is not a (valid) fraction node. */
export function desiredMilli(node: KubeNode): number | null {
  const labels = node.metadata?.labels ?? {};
  if (labels[SHARING_LABEL] !== 'fraction') return null;
  if (labels[NODE_AGENT_LABEL] === NODE_AGENT_SERVING) return null;
  const count = labels[GFD.count];
  if (count === undefined || !/^\d+$/.test(count) || Number(count) === 0) return null;
  return Number(count) * 1000;
}

export async function reconcileCapacity(node: KubeNode, writer: ClusterWriter, log: Logger): Promise<boolean> {
  const want = desiredMilli(node);
  if (want === null) return false;
  const have = node.status?.allocatable?.[GPU_MILLI];
  const quantity = (v: string | number | undefined): number => (v === undefined ? Number.NaN : parseQuantity(v));
  if (quantity(have) === want && quantity(node.status?.capacity?.[GPU_MILLI]) === want) return false;
  await writer.setNodeResources(node.metadata?.name ?? '', { [GPU_MILLI]: String(want) });
  log.info({ node: node.metadata?.name, [GPU_MILLI]: want }, 'advertised fraction capacity');
  return true;
}
