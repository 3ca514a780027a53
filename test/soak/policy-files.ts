// The soak's policy directory, shared by every webhook and extender replica as a ConfigMap mount would be: the files in
// force, and the corruption fault that replaces one of them with a broken version and later puts the good one back.
// The policy in force is always the last good set: the servers must keep serving it while the files are broken.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compilePolicy, formatProblem } from '../../core/policy/compile.ts';
import type { Policy } from '../../core/policy/model.ts';
import type { SeededRandom } from '../../core/simulation/random.ts';

export interface Corruption {
  readonly file: string;
  readonly how: string;
  readonly text: string;
  /** What the compiler says about it (the soak checks that it really is broken). */
  readonly problems: readonly string[];
}

/** Broken versions of a policy file, as a bad edit or a half-written file would leave it. */
export function corruptions(file: string, text: string): Omit<Corruption, 'problems'>[] {
  return [
    { file, how: 'YAML syntax error (an unclosed flow sequence)', text: `${text}\n  extra: [unclosed, \n` },
    {
      file,
      how: 'schema violation (fractionMode: fractional)',
      text: text.replace(/fractionMode: \w+/, 'fractionMode: fractional'),
    },
    {
      file,
      how: 'a tenant names a pool that does not exist',
      text: text.replace(/pools: \[([^\]]+)\]/, 'pools: [$1, gpu-farm-9]'),
    },
    // Cut inside a flow mapping: a cut between two entries can leave a shorter file that is still a valid policy.
    {
      file,
      how: 'half written (cut in the middle of a line)',
      text: text.slice(0, text.indexOf('{', Math.floor(text.length / 2)) + 1),
    },
  ];
}

export class PolicyFiles {
  readonly dir: string;
  readonly good: Readonly<Record<string, string>>;
  readonly policy: Policy;
  private broken: Corruption | null = null;

  constructor(dir: string, good: Readonly<Record<string, string>>) {
    this.dir = dir;
    this.good = good;
    const compiled = compilePolicy(Object.entries(good).map(([name, text]) => ({ name, text })));
    if (!compiled.ok) throw new Error(`the soak's policy does not compile: ${compiled.problems.map(formatProblem)}`);
    this.policy = compiled.policy;
  }

  /** The policy the servers must be serving: the last good files, compiled as the servers compile them. */
  inForce(): Policy {
    return this.policy;
  }

  get corrupted(): Corruption | null {
    return this.broken;
  }

  /** Replaces one file with a broken version that really does not compile. */
  corrupt(rng: SeededRandom): Corruption {
    const names = Object.keys(this.good).sort();
    const file = names[rng.below(names.length)]!;
    const options = corruptions(file, this.good[file]!);
    for (let tries = 0; tries < options.length; tries++) {
      const c = options[(rng.below(options.length) + tries) % options.length]!;
      if (c.text === this.good[file]) continue;
      const result = compilePolicy(
        Object.entries({ ...this.good, [file]: c.text }).map(([name, text]) => ({ name, text })),
      );
      if (result.ok) continue;
      this.broken = { ...c, problems: result.problems.map(formatProblem) };
      writeFileSync(join(this.dir, file), c.text);
      return this.broken;
    }
    throw new Error(`no corruption of ${file} breaks the policy`);
  }

  /** Puts the good file back. */
  repair(): void {
    if (this.broken === null) return;
    writeFileSync(join(this.dir, this.broken.file), this.good[this.broken.file]!);
    this.broken = null;
  }

  /** Writes the files in force into `dir` (the snapshot directory's policy/). */
  record(dir: string): void {
    mkdirSync(dir, { recursive: true });
    for (const [name, text] of Object.entries(this.good)) writeFileSync(join(dir, name), text);
  }
}
