// `tessera serve` as a process: a start that cannot serve exits non-zero with the reason, instead of staying alive
// without listening on any port.

import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXAMPLE_POLICY_TEXT } from '../../fixtures/admission.ts';
import { runCli } from '../../fixtures/cli.ts';
import { closedPort } from '../../fixtures/fake-apiserver.ts';

async function setup(t: { teardown(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-serve-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'policy.yaml'), EXAMPLE_POLICY_TEXT);
  const port = await closedPort();
  writeFileSync(
    join(dir, 'kubeconfig'),
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{name: c, cluster: {server: "http://127.0.0.1:${port}"}}]`,
      'users: [{name: u, user: {token: t}}]',
      'contexts: [{name: x, context: {cluster: c, user: u}}]',
      'current-context: x',
      '',
    ].join('\n'),
  );
  return { dir, kubeconfig: join(dir, 'kubeconfig') };
}

t.test('serve webhook and serve extender exit 1 on a missing TLS file', async (t) => {
  const env = await setup(t);
  for (const server of ['webhook', 'extender']) {
    const r = await runCli([
      'serve',
      server,
      '--policy-dir',
      env.dir,
      '--kubeconfig',
      env.kubeconfig,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--tls-cert',
      join(env.dir, 'missing.crt'),
      '--tls-key',
      join(env.dir, 'missing.key'),
    ]);
    t.equal(r.timedOut, false, `${server}: the process ends`);
    t.equal(r.code, 1, `${server}: exit code 1`);
    t.match(r.stderr, /cannot read the serving certificate .*missing\.crt.*no such file/, server);
  }
});

t.test('serve webhook exits 1 when its port is taken, after starting its watches', async (t) => {
  const env = await setup(t);
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => busy.close());
  const port = (busy.address() as AddressInfo).port;
  const r = await runCli([
    'serve',
    'webhook',
    '--policy-dir',
    env.dir,
    '--kubeconfig',
    env.kubeconfig,
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
    '--log-level',
    'silent',
  ]);
  t.equal(r.timedOut, false, 'the process ends');
  t.equal(r.code, 1);
  t.match(r.stderr, /EADDRINUSE/);
});
