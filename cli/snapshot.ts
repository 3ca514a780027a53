// Cluster snapshots in the format of DESIGN.md ("A living cluster"): Nodes, Pods and Namespaces as the API lists them,
// with the time. Soaks and the live benchmark write them; `tessera explain --snapshot` and the invariant checker read
// them.

import { writeFileSync } from 'node:fs';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { ClusterSnapshot } from '../core/invariants/cluster-snapshot.ts';
import type { KubeNamespace, KubeNode, KubePod } from '../core/kube-objects.ts';

/** Lists the three kinds (paged, so that a large cluster does not need one huge response). */
export async function takeSnapshot(kc: KubeConfig, now: () => Date = () => new Date()): Promise<ClusterSnapshot> {
  const core = kc.makeApiClient(CoreV1Api);
  const all = async <T>(
    list: (cont: string | undefined) => Promise<{ items: T[]; metadata?: { _continue?: string } }>,
  ) => {
    const items: T[] = [];
    let cont: string | undefined;
    do {
      const page = await list(cont);
      items.push(...page.items);
      cont = page.metadata?._continue || undefined;
    } while (cont);
    return items;
  };
  const time = now().toISOString();
  const [nodes, pods, namespaces] = await Promise.all([
    all((c) => core.listNode({ limit: 500, ...(c ? { _continue: c } : {}) })),
    all((c) => core.listPodForAllNamespaces({ limit: 500, ...(c ? { _continue: c } : {}) })),
    all((c) => core.listNamespace({ limit: 500, ...(c ? { _continue: c } : {}) })),
  ]);
  return {
    time,
    nodes: nodes as KubeNode[],
    pods: pods as KubePod[],
    namespaces: namespaces as KubeNamespace[],
  };
}

export function writeSnapshot(file: string, snapshot: ClusterSnapshot): void {
  writeFileSync(file, `${JSON.stringify(snapshot)}\n`);
}
