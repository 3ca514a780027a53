// Strategy scores are unbounded reals; the extender answers integers 0..10 (MaxExtenderPriority), which kube-scheduler
// multiplies by the extender weight and by 10. Min-max normalisation keeps the order; equal scores all get 10.

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
  return scores.map((s) => Math.round(((s - min) / (max - min)) * MAX_EXTENDER_PRIORITY));
}
