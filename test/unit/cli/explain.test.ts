import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { explainCommand } from '../../../cli/explain.ts';
import { fractionH100, migA100 } from '../../fixtures/nodes.ts';
import { pod } from '../../fixtures/pods.ts';

const SHARED = new URL('../../../../shared/examples/policy.yaml', import.meta.url).pathname;

t.test('explain: per node verdict, reason and score, and the placement bind would commit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-explain-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const running = pod('busy')
    .ns('vision')
    .uid('busy')
    .gpuMilli(700)
    .annotate('tessera.io/pool', 'shared-h100')
    .boundTo('h100-a')
    .annotate(
      'tessera.io/assignment',
      JSON.stringify({ node: 'h100-a', gpus: [{ index: 1, milli: 700, memoryMiB: 57091 }] }),
    )
    .build();
  const snapshot = {
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } },
      },
      fractionH100('h100-a', 2, { labels: { 'tessera.io/pool': 'shared-h100' } }),
      fractionH100('h100-b', 2, { labels: { 'tessera.io/pool': 'shared-h100' } }),
      migA100('a100-a', 1),
      running,
    ],
  };
  writeFileSync(join(dir, 'snapshot.json'), JSON.stringify(snapshot));
  writeFileSync(
    join(dir, 'pod.yaml'),
    `apiVersion: v1\nkind: Pod\nmetadata: {name: nb, namespace: vision, annotations: {tessera.io/gpu-fraction: "0.25"}}\nspec: {containers: [{name: main, image: x}]}\n`,
  );
  const lines: string[] = [];
  const original = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    t.equal(
      await explainCommand([
        '--snapshot',
        join(dir, 'snapshot.json'),
        '--pod',
        join(dir, 'pod.yaml'),
        '--policy',
        SHARED,
        '--json',
      ]),
      0,
    );
    await explainCommand([
      '--snapshot',
      join(dir, 'snapshot.json'),
      '--pod',
      join(dir, 'pod.yaml'),
      '--policy',
      SHARED,
    ]);
  } finally {
    console.log = original;
  }
  const json = JSON.parse(lines[0]!);
  t.same(
    json.nodes.map((n: { name: string; feasible: boolean }) => [n.name, n.feasible]),
    [
      ['a100-a', false],
      ['h100-a', true],
      ['h100-b', true],
    ],
  );
  t.match(json.nodes[0].reason, /^NodeNotInPool: node a100-a is not in pool shared-h100/);
  t.same(
    json.choice,
    { node: 'h100-a', gpus: [{ index: 1, milli: 250, memoryMiB: 20389 }] },
    'the quarter fills the busy GPU on the busy node',
  );
  t.match(lines.slice(1).join('\n'), /bind would commit node h100-a, GPUs 1 \(250m, 20389 MiB\)/);
});
