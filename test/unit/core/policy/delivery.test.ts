import t from 'tap';
import { readFileSync } from 'node:fs';
import { compilePolicy, formatProblem } from '../../../../core/policy/compile.ts';
import { poolNamed } from '../../../../core/policy/model.ts';

const EXAMPLE = readFileSync(new URL('../../../../../shared/examples/policy.yaml', import.meta.url), 'utf8');
const file = (text: string) => ({ name: 'policy.yaml', text });
/** The example policy with extra lines under the shared-h100 (fraction) or a100-mig pool. */
const withPoolLines = (pool: 'shared-h100' | 'a100-mig', lines: string) => {
  const marker = pool === 'shared-h100' ? '      fractionMode: fraction\n' : '      fractionMode: mig\n';
  return EXAMPLE.replace(marker, `${marker}${lines}`);
};

t.test('the shared examples still compile, and their fraction pool uses the downward API', async (t) => {
  for (const path of ['policy.yaml', 'dra/policy.yaml']) {
    const text = readFileSync(new URL(`../../../../../shared/examples/${path}`, import.meta.url), 'utf8');
    const r = compilePolicy([file(text)]);
    if (!r.ok) throw new Error(`${path}: ${r.problems.map(formatProblem).join('\n')}`);
    for (const pool of r.policy.pools) t.equal(pool.delivery, null, `${path} ${pool.name}: no agent delivery`);
  }
});

t.test('a fraction pool served by the node agent: mode and required enforcement', async (t) => {
  const r = compilePolicy([
    file(withPoolLines('shared-h100', '      delivery: { mode: cdi-cri, enforcement: hami-core }\n')),
  ]);
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join('\n'));
  t.same(poolNamed(r.policy, 'shared-h100')!.delivery, { mode: 'cdi-cri', enforcement: 'hami-core' });

  const bare = compilePolicy([file(withPoolLines('shared-h100', '      delivery: {}\n'))]);
  if (!bare.ok) throw new Error(bare.problems.map(formatProblem).join('\n'));
  t.same(
    poolNamed(bare.policy, 'shared-h100')!.delivery,
    { mode: 'auto', enforcement: null },
    'defaults: auto, none required',
  );
});

t.test('delivery is refused with the field named when it is wrong', async (t) => {
  const cases: [string, 'shared-h100' | 'a100-mig', string, RegExp][] = [
    ['an unknown mode', 'shared-h100', '      delivery: { mode: cdi-annotations }\n', /delivery\/mode/],
    ['an unknown enforcement', 'shared-h100', '      delivery: { enforcement: strict }\n', /delivery\/enforcement/],
    ['an unknown field', 'shared-h100', '      delivery: { agent: true }\n', /delivery/],
    [
      'delivery on a MIG pool',
      'a100-mig',
      '      delivery: { mode: envvar }\n',
      /delivery applies to fractionMode fraction only/,
    ],
  ];
  for (const [what, pool, lines, pattern] of cases) {
    const r = compilePolicy([file(withPoolLines(pool, lines))]);
    t.notOk(r.ok, what);
    if (!r.ok) t.match(r.problems.map(formatProblem).join('\n'), pattern, what);
  }
});
