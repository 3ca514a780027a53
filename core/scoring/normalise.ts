// Strategy scores are unbounded reals; the extender answers integers 0..10 (MaxExtenderPriority), which kube-scheduler
// multiplies by the extender weight and by 10. Only the best placements get 10: min-max scaling rounded to 11 levels
// would put every node within 5 % of the range at the top and let kube-scheduler pick among them at random, which
// loses the strategy's choice (on the openb trace through a real kube-scheduler: about 5 points more GPU unallocated,
// see docs/benchmarks.md). The others are scaled down from 9, keeping their order coarsely. Equal scores all get 10.

export const MAX_EXTENDER_PRIORITY = 10;

export function normaliseScores(scores: readonly number[]): number[] {
  if (scores.length === 0) return [];
  let min = Infinity;
  let max = -Infinity;
  for (const s of scores) {
    if (s < min) min = s;
    if (s > max) max = s;
  }
  if (!(max > min)) return scores.map(() => MAX_EXTENDER_PRIORITY);
  const below = MAX_EXTENDER_PRIORITY - 1;
  return scores.map((s) =>
    s === max ? MAX_EXTENDER_PRIORITY : Math.min(below, Math.floor(((s - min) / (max - min)) * MAX_EXTENDER_PRIORITY)),
  );
}
