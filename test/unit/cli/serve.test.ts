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

// A start that hangs shows as a timeout; on a busy machine a healthy start alone can take many seconds, so the three
// runs go at once and each may take long.
const TIMEOUT_MS = 100_000;

t.test('serve exits 1 with the reason when it cannot serve: a missing TLS file, a port taken', async (t) => {
  const env = await setup(t);
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => busy.close());
  const taken = String((busy.address() as AddressInfo).port);
  const common = [
    '--policy-dir',
    env.dir,
    '--kubeconfig',
    env.kubeconfig,
    '--host',
    '127.0.0.1',
    '--log-level',
    'silent',
  ];
  const missingTls = [
    '--port',
    '0',
    '--tls-cert',
    join(env.dir, 'missing.crt'),
    '--tls-key',
    join(env.dir, 'missing.key'),
  ];
  const [webhook, extender, dispatcher, port] = await Promise.all([
    runCli(['serve', 'webhook', ...common, ...missingTls], { timeoutMs: TIMEOUT_MS }),
    runCli(['serve', 'extender', ...common, ...missingTls], { timeoutMs: TIMEOUT_MS }),
    runCli(['serve', 'dispatcher', ...common, ...missingTls], { timeoutMs: TIMEOUT_MS }),
    runCli(['serve', 'webhook', ...common, '--port', taken], { timeoutMs: TIMEOUT_MS }),
  ]);
  for (const [server, r] of [
    ['webhook', webhook],
    ['extender', extender],
    ['dispatcher', dispatcher],
  ] as const) {
    t.equal(r.timedOut, false, `${server}: the process ends`);
    t.equal(r.code, 1, `${server}: exit code 1`);
    t.match(r.stderr, /cannot read the serving certificate .*missing\.crt.*no such file/, server);
  }
  t.equal(port.timedOut, false, 'port taken: the process ends, although its watches had started');
  t.equal(port.code, 1);
  t.match(port.stderr, /EADDRINUSE/);
});
