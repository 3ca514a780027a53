// Tessera's default strategy: fragmentation-aware best fit. Measured on the Alibaba openb trace it leaves fewer GPUs
// unallocated than FGD (docs/packing.md). Each placement scores, in milli-GPU:
//   - sliver pairing: 12 x how much the placement adds to the capacity its GPUs are expected to be left with for good,
//     given the workload's shares (sliver-waste.ts); it keeps a 470 m share off a GPU a 650 m share would fill to 970 m,
//     and sends small shares into slivers nothing else fits (default trace: 3.82 % unallocated at 100 %, from 4.13);
//   - best fit at the GPU for shares: a share goes to the GPU it leaves with the least spare compute;
//   - FGD's fragmentation growth against the workload's typical pods, quantised to 100 milli: in full precision it
//     chases noise (7.3 % unallocated instead of 4.6 % on the default trace), coarse it is a strong signal; it is also
//     what keeps unconstrained pods off the GPU models that constrained pods need;
//   - a penalty for leaving GPU capacity without the CPU or memory to use it (stranding);
//   - for multi-GPU sets, a bonus for NVLink/NUMA locality worth one GPU;
//   - for pods that accept any model, a penalty for taking capacity of a model that model-restricted pods are expected
//     to need, steep in the pressure (its 4th power): negligible at 70 % pressure, decisive near 100 %.
// Whole GPUs get no best-fit term: packing them onto the nodes with the fewest untouched GPUs sends them to the small
// nodes of scarce models and doubles the loss when pods constrain models (gpuspec workloads).
// Device-plugin nodes, where the kubelet picks the device, are ranked by how full they become (binpack).

import type { Placement } from '../fit.ts';
import { fragmentationDeltas } from './fgd.ts';
import { gpuLeftover, gpuUtilisationAfter } from './gpu-occupancy.ts';
import type { ScoreInput, Scored, Strategy } from './strategy.ts';

const FRAGMENTATION_STEP = 100;
const STRANDING_WEIGHT = 500;
const TOPOLOGY_WEIGHT = 1000;
const MODEL_PRESSURE_WEIGHT = 2;
// Chosen on the default trace (docs/packing.md, "Sliver pairing"): 8 gives 3.85 %, 12 3.82 %, 16 3.79 % over seeds
// 42-51; 12 did better than 16 on cpu250 and gpuspec25.
const SLIVER_WEIGHT = 12;

function bestFitTerm({ usage }: ScoreInput, p: Placement): number {
  return p.gpus.length === 1 && p.gpus[0]!.milli < 1000 ? -gpuLeftover(usage, p) : 0;
}

function strandingTerm({ node, usage, demand }: ScoreInput, p: Placement): number {
  const gpuLeft = 1 - gpuUtilisationAfter(node, usage, p);
  const cpuLeft = node.cpuMilli === 0 ? 1 : (node.cpuMilli - usage.cpuMilli - demand.cpuMilli) / node.cpuMilli;
  const memoryLeft = node.memoryMiB === 0 ? 1 : (node.memoryMiB - usage.memoryMiB - demand.memoryMiB) / node.memoryMiB;
  return -STRANDING_WEIGHT * (Math.max(0, gpuLeft - cpuLeft) + Math.max(0, gpuLeft - memoryLeft));
}

/** How much the placement adds to the capacity its GPUs are expected to be left with for good (sliver-waste.ts). */
function sliverTerm({ usage, context }: ScoreInput, p: Placement): number {
  const waste = context.sliverWaste;
  let added = 0;
  for (const g of p.gpus) {
    const free = Math.min(1000, Math.max(0, Math.round(1000 - usage.milliOn(g.index))));
    const left = Math.max(0, free - Math.round(g.milli));
    added += waste[left]! - waste[free]!;
  }
  return added;
}

/** The default strategy with another sliver weight (0 is the strategy before sliver pairing), for measurements. */
export function fragmentationAwareWith(sliverWeight: number): Strategy {
  return {
    ...fragmentationAware,
    choose: (input) => chooseWith(input, sliverWeight),
  };
}

function chooseWith(input: ScoreInput, sliverWeight: number): Scored {
  const { node, usage, placements } = input;
  if (node.mode !== 'fraction')
    return { placement: placements[0]!, score: 1000 * gpuUtilisationAfter(node, usage, placements[0]!) };
  const deltas = fragmentationDeltas(input);
  const pressure = input.demand.models === null ? input.context.modelPressure(node.model) : 0;
  const steer = pressure > 0 ? MODEL_PRESSURE_WEIGHT * pressure ** 4 : 0;
  let best = 0;
  let bestScore = -Infinity;
  for (let i = 0; i < placements.length; i++) {
    const p = placements[i]!;
    const fragmentation = Math.floor(deltas[i]! / FRAGMENTATION_STEP) * FRAGMENTATION_STEP;
    const taken = steer === 0 ? 0 : p.gpus.reduce((sum, g) => sum + g.milli, 0);
    const score =
      bestFitTerm(input, p) -
      fragmentation -
      sliverWeight * sliverTerm(input, p) +
      strandingTerm(input, p) +
      TOPOLOGY_WEIGHT * (p.topology - 1) -
      steer * taken;
    if (score > bestScore) {
      best = i;
      bestScore = score;
    }
  }
  return { placement: placements[best]!, score: bestScore };
}

export const fragmentationAware: Strategy = {
  name: 'tessera',
  description:
    'fragmentation-aware best fit: GPU best fit for shares + quantised FGD + CPU/memory stranding + topology',
  choose: (input) => chooseWith(input, SLIVER_WEIGHT),
};
