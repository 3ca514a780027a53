// The strategy registry: a map from the configured name to the strategy (kube-scheduler's nodeResourceStrategyTypeMap).

import { bestFit } from './best-fit.ts';
import { binpack } from './binpack.ts';
import { fgd } from './fgd.ts';
import { spread } from './spread.ts';
import type { Strategy } from './strategy.ts';
import { fragmentationAware } from './fragmentation-aware.ts';

export const STRATEGIES: Readonly<Record<string, Strategy>> = {
  [fragmentationAware.name]: fragmentationAware,
  [fgd.name]: fgd,
  [bestFit.name]: bestFit,
  [binpack.name]: binpack,
  [spread.name]: spread,
};

export const DEFAULT_STRATEGY = fragmentationAware.name;

export function strategyNamed(name: string): Strategy {
  const s = STRATEGIES[name];
  if (!s) throw new Error(`unknown strategy "${name}"; choose one of ${Object.keys(STRATEGIES).join(', ')}`);
  return s;
}
