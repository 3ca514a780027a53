// A synthetic GPU fleet for the extender benchmark: N nodes in mixed modes (fraction H100s, MIG A100s, time-sliced
// L4s, exclusive H100s) across the example policy's pools, about 60 % occupied, and the pods that ask for them.
// Dense fleets (the scale benchmark) carry about 10 running pods per node, as large clusters do: 0-4 small shares
// (100-250 m) on each fraction GPU instead of at most one.

import type { KubeNode, KubePod } from '../../core/kube-objects.ts';
import { SeededRandom } from '../../core/simulation/random.ts';
import { exclusiveH100, fractionH100, migA100, timeSlicedL4 } from '../fixtures/nodes.ts';
import { pod } from '../fixtures/pods.ts';

export interface Fleet {
  readonly nodes: KubeNode[];
  readonly running: KubePod[];
  /** Node names per pool, as kube-scheduler's NodeAffinity filter would pass them to the extender. */
  readonly pools: Record<string, string[]>;
}

const POOLS = ['shared-h100', 'a100-mig', 'l4-timesliced', 'sovereign-eu'] as const;

export function buildFleet(size: number, seed = 1, dense = false): Fleet {
  const random = new SeededRandom(seed);
  const nodes: KubeNode[] = [];
  const running: KubePod[] = [];
  const pools: Record<string, string[]> = Object.fromEntries(POOLS.map((p) => [p, []]));
  for (let i = 0; i < size; i++) {
    const kind = i % 10 < 5 ? 0 : i % 10 < 7 ? 1 : i % 10 < 9 ? 2 : 3;
    const name = `gpu-${String(i).padStart(5, '0')}`;
    const pool = POOLS[kind]!;
    const labels = {
      'tessera.io/pool': pool,
      ...(pool === 'sovereign-eu' ? { 'topology.kubernetes.io/region': 'eu-central' } : {}),
    };
    let n: KubeNode;
    if (kind === 0) n = fractionH100(name, 8, { labels });
    else if (kind === 1) n = migA100(name, 8);
    else if (kind === 2) n = timeSlicedL4(name);
    else n = exclusiveH100(name, 8);
    n.metadata!.labels = { ...n.metadata!.labels, ...labels };
    n.metadata!.resourceVersion = '1';
    nodes.push(n);
    pools[pool]!.push(name);
    // About 60 % occupancy.
    if (kind === 0 && dense) {
      for (let g = 0; g < 8; g++) {
        const shares = random.below(5);
        for (let k = 0; k < shares; k++) {
          const milli = [100, 125, 200, 250][random.below(4)]!;
          running.push(
            pod(`r-${i}-${g}-${k}`)
              .ns('vision')
              .uid(`r-${i}-${g}-${k}`)
              .gpuMilli(milli)
              .cpu('1')
              .annotate('tessera.io/pool', pool)
              .boundTo(name)
              .annotate(
                'tessera.io/assignment',
                JSON.stringify({
                  node: name,
                  gpus: [{ index: g, milli, memoryMiB: Math.floor((milli * 81559) / 1000) }],
                }),
              )
              .build(),
          );
        }
      }
    } else if (kind === 0) {
      for (let g = 0; g < 8; g++) {
        if (random.next() > 0.6) continue;
        const milli = [250, 500, 1000][random.below(3)]!;
        running.push(
          pod(`r-${i}-${g}`)
            .ns('vision')
            .uid(`r-${i}-${g}`)
            .gpuMilli(milli)
            .cpu('2')
            .annotate('tessera.io/pool', pool)
            .boundTo(name)
            .annotate(
              'tessera.io/assignment',
              JSON.stringify({
                node: name,
                gpus: [{ index: g, milli, memoryMiB: Math.floor((milli * 81559) / 1000) }],
              }),
            )
            .build(),
        );
      }
    } else if (kind === 1) {
      const used = random.below(10);
      for (let k = 0; k < used; k++)
        running.push(
          pod(`r-${i}-${k}`)
            .ns('vision')
            .uid(`r-${i}-${k}`)
            .limit(`nvidia.com/mig-${k % 2 ? '1g.10gb' : '2g.20gb'}`, '1')
            .boundTo(name)
            .build(),
        );
    } else if (kind === 2) {
      const used = random.below(12);
      for (let k = 0; k < used; k++)
        running.push(
          pod(`r-${i}-${k}`).ns('vision').uid(`r-${i}-${k}`).limit('nvidia.com/gpu.shared', '1').boundTo(name).build(),
        );
    } else {
      running.push(
        pod(`r-${i}`)
          .ns('risk')
          .uid(`r-${i}`)
          .limit('nvidia.com/gpu', String(1 + random.below(6)))
          .boundTo(name)
          .build(),
      );
    }
  }
  return { nodes, running, pools };
}

/** Pending pods of realistic shapes and the pool each is pinned to. */
export function pendingPods(): { pod: KubePod; pool: string }[] {
  const out: { pod: KubePod; pool: string }[] = [];
  let i = 0;
  for (const milli of [100, 250, 300, 500, 750, 1000, 2000, 4000]) {
    out.push({
      pod: pod(`p-${i++}`)
        .ns('vision')
        .uid(`p-${i}`)
        .cpu('4')
        .memory('16Gi')
        .gpuMilli(milli)
        .annotate('tessera.io/pool', 'shared-h100')
        .build(),
      pool: 'shared-h100',
    });
  }
  for (const profile of ['1g.10gb', '2g.20gb', '3g.40gb'])
    out.push({
      pod: pod(`p-${i++}`)
        .ns('vision')
        .uid(`p-${i}`)
        .limit(`nvidia.com/mig-${profile}`, '1')
        .annotate('tessera.io/pool', 'a100-mig')
        .build(),
      pool: 'a100-mig',
    });
  out.push({
    pod: pod(`p-${i++}`)
      .ns('vision')
      .uid(`p-${i}`)
      .limit('nvidia.com/gpu.shared', '1')
      .annotate('tessera.io/pool', 'l4-timesliced')
      .build(),
    pool: 'l4-timesliced',
  });
  out.push({
    pod: pod(`p-${i++}`)
      .ns('risk')
      .uid(`p-${i}`)
      .limit('nvidia.com/gpu', '2')
      .annotate('tessera.io/pool', 'sovereign-eu')
      .build(),
    pool: 'sovereign-eu',
  });
  return out;
}
