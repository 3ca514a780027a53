// explain and audit against a live cluster: --kubeconfig and --context, and a clear message for each way the
// kubeconfig or the API server can be missing.

import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditCommand } from '../../../cli/audit.ts';
import { explainCommand } from '../../../cli/explain.ts';
import { closedPort, FakeApiServer } from '../../fixtures/fake-apiserver.ts';
import { fractionH100 } from '../../fixtures/nodes.ts';
import { pod } from '../../fixtures/pods.ts';

const SHARED = new URL('../../../../shared/examples/policy.yaml', import.meta.url).pathname;

async function capture(run: () => Promise<number>): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    return { code: await run(), out: lines.join('\n') };
  } finally {
    console.log = original;
  }
}

/** Runs with the environment a user without any kubeconfig has. */
async function withoutKubeconfig<T>(run: () => Promise<T>): Promise<T> {
  const saved = { KUBECONFIG: process.env.KUBECONFIG, HOME: process.env.HOME };
  const home = mkdtempSync(join(tmpdir(), 'tessera-home-'));
  delete process.env.KUBECONFIG;
  process.env.HOME = home;
  try {
    return await run();
  } finally {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    rmSync(home, { recursive: true, force: true });
  }
}

t.test('explain and audit read the cluster named by --kubeconfig and --context', async (t) => {
  const api = new FakeApiServer();
  api.put('namespaces', { metadata: { name: 'vision', labels: { 'tessera.io/tenant': 'research' } } });
  api.put('nodes', fractionH100('h100-a', 2, { labels: { 'tessera.io/pool': 'shared-h100' } }));
  api.put('pods', pod('nb').ns('vision').uid('nb').annotate('tessera.io/gpu-fraction', '0.25').build());
  await api.start();
  t.teardown(() => api.stop());
  const dir = mkdtempSync(join(tmpdir(), 'tessera-kube-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const down = await closedPort();
  writeFileSync(join(dir, 'config'), api.kubeconfigText([{ name: 'down', server: `http://127.0.0.1:${down}` }]));
  const kubeconfig = join(dir, 'config');

  const explained = await capture(() =>
    explainCommand([
      'nb',
      '-n',
      'vision',
      '--policy',
      SHARED,
      '--kubeconfig',
      kubeconfig,
      '--context',
      'fake',
      '--json',
    ]),
  );
  t.equal(explained.code, 0);
  t.match(JSON.parse(explained.out), { nodes: [{ name: 'h100-a', feasible: true }], choice: { node: 'h100-a' } });
  const audited = await capture(() => auditCommand(['--policy', SHARED, '--kubeconfig', kubeconfig, '--json']));
  t.equal(audited.code, 0);
  t.match(JSON.parse(audited.out), { revision: /^[0-9a-f]{16}$/ });

  await t.rejects(
    explainCommand(['nb', '-n', 'vision', '--kubeconfig', kubeconfig, '--context', 'down']),
    new RegExp(`cannot read pod vision/nb from the Kubernetes API at http://127.0.0.1:${down}: connect ECONNREFUSED`),
  );
  await t.rejects(
    auditCommand(['--policy', SHARED, '--kubeconfig', kubeconfig, '--context', 'nope']),
    /--context nope: the kubeconfig has no such context \(it has: fake, down\)/,
  );
  await t.rejects(
    explainCommand(['ghost', '-n', 'vision', '--kubeconfig', kubeconfig]),
    /cannot read pod vision\/ghost from the Kubernetes API at .*: HTTP 404: pods "ghost" not found/,
  );
});

t.test('a missing kubeconfig says what was looked for and how to fix it', async (t) => {
  await t.rejects(
    auditCommand(['--policy', SHARED, '--kubeconfig', '/nonexistent/config']),
    /--kubeconfig \/nonexistent\/config: no such file; pass --kubeconfig FILE, set KUBECONFIG, or create ~\/.kube\/config/,
  );
  await withoutKubeconfig(async () => {
    await t.rejects(
      explainCommand(['nb', '-n', 'vision']),
      /no kubeconfig found \(no --kubeconfig, no KUBECONFIG, no ~\/.kube\/config, not in a pod\)/,
    );
    process.env.KUBECONFIG = '/nonexistent/a';
    await t.rejects(auditCommand(['--policy', SHARED]), /KUBECONFIG names \/nonexistent\/a, which does not exist/);
  });
});
