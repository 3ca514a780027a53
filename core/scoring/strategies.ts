// The strategy registry: a map from the configured name to the strategy (kube-scheduler's nodeResourceStrategyTypeMap).

import { bestFit } from './best-fit.ts';
import { binpack } from './binpack.ts';
import { fgd } from './fgd.ts';
import { spread } from './spread.ts';
import type { Strategy } from './strategy.ts';
import { tessera } from './tessera.ts';

export const STRATEGIES: Readonly<Record<string, Strategy>> = {
  [tessera.name]: tessera,
  [fgd.name]: fgd,
  [bestFit.name]: bestFit,
  [binpack.name]: binpack,
  [spread.name]: spread,
};

export const DEFAULT_STRATEGY = tessera.name;

export function strategyNamed(name: string): Strategy {
  const s = STRATEGIES[name];
  if (!s) throw new Error(`unknown strategy "${name}"; choose one of ${Object.keys(STRATEGIES).join(', ')}`);
  return s;
}
