// When the soak's faults happen: a seeded plan in which every kind happens at least once, the certificate rotation as
// often as its calendar has steps (when the run is long enough), and more faults drawn at random to fill a long run,
// never two closer than a minimum gap. Pure, so that a seed names one plan.

import { SeededRandom } from '../../core/simulation/random.ts';

export const FAULT_KINDS = [
  'extender-leader-kill',
  'extender-rollout',
  'webhook-replica-kill',
  'scheduler-restart',
  'apiserver-restart',
  'kwok-restart',
  'policy-corrupt',
  'cert-rotation',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

export interface PlannedFault {
  /** Milliseconds after the load starts. */
  readonly atMs: number;
  readonly kind: FaultKind;
}

export interface PlanOptions {
  readonly seed: number;
  /** Faults happen in [fromMs, toMs]. */
  readonly fromMs: number;
  readonly toMs: number;
  /** Least time between two faults. */
  readonly minGapMs: number;
  /** How many certificate rotations to plan at most (the calendar's steps). */
  readonly rotations: number;
  /** Mean time between faults; the plan adds random faults until it has about (toMs - fromMs) / meanGapMs of them. */
  readonly meanGapMs: number;
}

export function planFaults(o: PlanOptions): PlannedFault[] {
  const rng = new SeededRandom(o.seed);
  const span = o.toMs - o.fromMs;
  const slots = Math.floor(span / o.minGapMs) + 1;
  const wanted = Math.max(FAULT_KINDS.length, Math.round(span / o.meanGapMs));
  const count = Math.min(slots, wanted);
  if (count < FAULT_KINDS.length)
    throw new Error(
      `faults need ${FAULT_KINDS.length} slots ${o.minGapMs / 1000} s apart; ${span / 1000} s holds ${slots}`,
    );
  // Every kind once; the rotation again while the calendar has steps and room remains; then others at random.
  const kinds: FaultKind[] = [...FAULT_KINDS];
  for (let i = 1; i < o.rotations && kinds.length < count; i++) kinds.push('cert-rotation');
  const others = FAULT_KINDS.filter((k) => k !== 'cert-rotation');
  while (kinds.length < count) kinds.push(others[rng.below(others.length)]!);
  rng.shuffle(kinds);
  // Times: `count` slots at least minGap apart, with the slack spread at random between them.
  const slack = span - (count - 1) * o.minGapMs;
  const cuts = Array.from({ length: count }, () => rng.next() * slack).sort((a, b) => a - b);
  return kinds.map((kind, i) => ({ atMs: Math.round(o.fromMs + cuts[i]! + i * o.minGapMs), kind }));
}
