import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { explain, explainCommand } from '../../../cli/explain.ts';
import { loadPolicy } from '../../../cli/policy-files.ts';
import type { KubeNamespace } from '../../../core/kube-objects.ts';
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

const vision = {
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } },
};
const scratch = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'scratch' } };
const shared = (name: string) => fractionH100(name, 2, { labels: { 'tessera.io/pool': 'shared-h100' } });
const holding = (name: string, node: string, gpu: number, milli: number, assignment?: string) =>
  pod(name)
    .ns('vision')
    .uid(name)
    .gpuMilli(milli)
    .annotate('tessera.io/pool', 'shared-h100')
    .boundTo(node)
    .annotate(
      'tessera.io/assignment',
      assignment ?? JSON.stringify({ node, gpus: [{ index: gpu, milli, memoryMiB: Math.floor(milli * 81.559) }] }),
    )
    .build();

async function explainJson(
  t: { teardown(fn: () => void): void },
  items: unknown[],
  podYaml: string,
  withPolicy = true,
): Promise<any> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-explain-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'snapshot.json'), JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
  writeFileSync(join(dir, 'pod.yaml'), podYaml);
  const lines: string[] = [];
  const original = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    const args = ['--snapshot', join(dir, 'snapshot.json'), '--pod', join(dir, 'pod.yaml'), '--json'];
    await explainCommand(withPolicy ? [...args, '--policy', SHARED] : args);
  } finally {
    console.log = original;
  }
  return JSON.parse(lines.join('\n'));
}

const halfGpu = (namespace: string, extra = '') =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: half, namespace: ${namespace}, annotations: {tessera.io/gpu-fraction: "0.5"${extra}}}\nspec: {containers: [{name: main, image: x}]}\n`;

t.test('explain mutates the pod even when it names its pool, so a half GPU does not "fit" a full node', async (t) => {
  const out = await explainJson(
    t,
    [vision, shared('h100-a'), holding('a', 'h100-a', 0, 700), holding('b', 'h100-a', 1, 700)],
    halfGpu('vision', ', tessera.io/pool: shared-h100'),
  );
  t.match(out.admission, { allowed: true });
  t.same(out.nodes.length, 1);
  t.match(out.nodes[0], { name: 'h100-a', feasible: false, reason: /^GpuCompute/ });
  t.equal(out.choice, null);
});

t.test('explain says the webhook would deny a GPU pod in a namespace without a tenant', async (t) => {
  for (const withPolicy of [true, false]) {
    const out = await explainJson(t, [vision, scratch, shared('h100-a')], halfGpu('scratch'), withPolicy);
    t.match(
      out.admission,
      { allowed: false, message: /namespace scratch has no tessera.io\/tenant label/ },
      `policy: ${withPolicy}`,
    );
    t.ok(
      out.nodes.every((n: { feasible: boolean; reason: string }) => !n.feasible && /webhook would deny/.test(n.reason)),
      'no node fits',
    );
    t.equal(out.choice, null);
  }
});

t.test(
  'without --policy, a GPU ask made only with annotations is flagged, not silently treated as a CPU pod',
  async (t) => {
    const out = await explainJson(t, [vision, shared('h100-a')], halfGpu('vision'), false);
    t.equal(out.admission, null);
    t.match(
      out.notes.join('\n'),
      /asks for GPUs only through annotations \(tessera.io\/gpu-fraction=0.5\).*Pass --policy/,
    );
  },
);

t.test('explain reports an unreadable assignment and never offers the GPUs that pod may hold', async (t) => {
  const out = await explainJson(
    t,
    [vision, shared('h100-a'), shared('h100-b'), holding('broken', 'h100-a', 0, 700, '{not json')],
    halfGpu('vision'),
  );
  t.match(out.problems, [/pod vision\/broken.*assignment/]);
  const a = out.nodes.find((n: { name: string }) => n.name === 'h100-a');
  t.match(a, {
    feasible: false,
    reason: /^NodeUnusable: pod vision\/broken runs here but its GPU record cannot be read/,
  });
  t.match(out.choice, { node: 'h100-b' });
});

t.test('explain takes a pod as the API client returns it (Date objects in its metadata)', async (t) => {
  const live = pod('live').ns('vision').uid('live').annotate('tessera.io/gpu-fraction', '0.5').build();
  const meta = live.metadata as Record<string, unknown>;
  meta.creationTimestamp = new Date('2026-01-01T00:00:00Z');
  meta.managedFields = [{ manager: 'kubectl', operation: 'Update', time: new Date('2026-01-01T00:00:00Z') }];
  const policy = loadPolicy([SHARED]);
  const nodes = [fractionH100('h100-a', 2, { labels: { 'tessera.io/pool': 'shared-h100' } })];
  const namespaces = [vision as KubeNamespace];
  const e = explain(live, nodes, [live], namespaces, policy, undefined, { existing: true });
  t.match(e, { admission: { allowed: true }, choice: { node: 'h100-a', gpus: [{ milli: 500 }] } });
});
