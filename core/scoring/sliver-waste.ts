// Sliver pairing: how much of a GPU's free capacity the workload is expected to leave unused for good, as a function of
// that free capacity. FGD's fragmentation measure looks one pod ahead, so it sees a GPU with 680 m free as mostly lost
// to the whole-GPU pods and happily leaves 210 m behind by adding a 470 m share; but 650 m or 320 m shares would have
// filled that GPU to 970 m, and nothing will ever fill the 210 m. This table looks to the end: the least capacity the
// GPU can be left with when it is topped up by the shares the workload keeps sending (the best pairing).
//
// Some shares do not count: those the slivers the workload cannot avoid creating will absorb anyway. A large share
// (over 500 m) leaves its complement free on its GPU, and on the openb trace the 810 m shares alone leave 190 m on more
// GPUs than there are shares of 190 m or less. Those small shares will find such slivers (best fit sends them there),
// so a new sliver that only they fit is as good as dead. Which shares are absorbed follows from Hall's condition on the
// profile: the shares up to a complement c are absorbed when, for every size x up to c, the shares in [x, c] are no
// more frequent than the complements in [x, c].

import type { WorkloadProfile } from './workload-profile.ts';

const GPU = 1000;

/** Frequency of each single-GPU share size (milli < 1000) among the profile's shapes. */
function shareWeights(profile: WorkloadProfile): Map<number, number> {
  const weights = new Map<number, number>();
  for (const s of profile.shapes)
    if (s.gpus === 1 && s.milliPerGpu > 0 && s.milliPerGpu < GPU)
      weights.set(s.milliPerGpu, (weights.get(s.milliPerGpu) ?? 0) + s.weight);
  return weights;
}

/**
 * The largest share size the workload's unavoidable slivers absorb (0 when none): the largest complement c = 1000 - b
 * of a share b > 500 such that for every share size x <= c, the shares in [x, c] weigh no more than the complements in
 * [x, c].
 */
export function absorbedShareLimit(profile: WorkloadProfile): number {
  const shares = shareWeights(profile);
  const complements = new Map<number, number>();
  for (const [b, w] of shares) if (b > GPU / 2) complements.set(GPU - b, (complements.get(GPU - b) ?? 0) + w);
  const sizes = [...shares.keys()].sort((a, b) => a - b);
  const weightIn = (map: Map<number, number>, lo: number, hi: number) => {
    let sum = 0;
    for (const [size, w] of map) if (size >= lo && size <= hi) sum += w;
    return sum;
  };
  let limit = 0;
  for (const c of [...complements.keys()].sort((a, b) => a - b)) {
    const below = sizes.filter((x) => x <= c);
    if (below.length > 0 && below.every((x) => weightIn(shares, x, c) <= weightIn(complements, x, c))) limit = c;
  }
  return limit;
}

/**
 * waste[f] for f = 0..1000: the least free milli a GPU with f milli free can be left with when topped up by the
 * profile's shares that are not absorbed elsewhere (and whole GPUs). Without a profile nothing tops up: waste[f] = f.
 */
export function sliverWaste(profile: WorkloadProfile): Float64Array {
  const limit = absorbedShareLimit(profile);
  const live = [...shareWeights(profile).keys()].filter((s) => s > limit);
  if (profile.shapes.some((s) => s.gpus > 0 && s.milliPerGpu >= GPU)) live.push(GPU);
  const waste = new Float64Array(GPU + 1);
  for (let f = 0; f <= GPU; f++) {
    let least = f;
    for (const s of live) if (s <= f && waste[f - s]! < least) least = waste[f - s]!;
    waste[f] = least;
  }
  return waste;
}
