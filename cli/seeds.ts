// Seed lists on the command line: "42", "42-51" or "42,45,50-51".

import { UsageError } from './help.ts';

const SEEDS_USAGE = '--seeds 42 | 42-51 | 42,45,50-51';

export function parseSeeds(text: string): number[] {
  const seeds: number[] = [];
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m)
      throw new UsageError(
        `--seeds "${text}": write a seed, a range or a list, e.g. 42, 42-51 or 42,45,50-51`,
        SEEDS_USAGE,
      );
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) throw new UsageError(`--seeds "${part}": the range must go upwards`, SEEDS_USAGE);
    for (let s = from; s <= to; s++) seeds.push(s);
  }
  return seeds;
}
