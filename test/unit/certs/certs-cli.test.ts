// `tessera certs`: bad input never damages the directory, and rotate follows changed names.

import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { certsCommand } from '../../../cli/certs.ts';
import { UsageError } from '../../../cli/help.ts';
import { DEFAULT_ROTATION, initialState, loadState, saveState, trusted } from '../../../certs/rotation.ts';

function quietly<T>(run: () => T): { value: T; out: string } {
  const lines: string[] = [];
  const original = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(' '));
  try {
    return { value: run(), out: lines.join('\n') };
  } finally {
    console.log = original;
  }
}

function issued(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-certs-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  quietly(() => certsCommand(['issue', '--dir', dir, '--name', 'tessera-webhook', '--dns', 'hook.svc']));
  return dir;
}

const contents = (dir: string) =>
  Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((f) => [f, readFileSync(join(dir, f), 'utf8')]),
  );

t.test('invalid input is refused before anything is written', async (t) => {
  const dir = issued(t);
  const before = contents(dir);
  t.ok(before['ca.crt']!.includes('BEGIN CERTIFICATE'));
  const bad: [string[], RegExp][] = [
    [['--now', 'not-a-date'], /--now "not-a-date" is not an ISO 8601 time/],
    [['--now', '2026-13-45'], /--now "2026-13-45" is not an ISO 8601 time/],
    [['--ip', 'not-an-ip'], /--ip "not-an-ip" is not an IP address/],
    [['--dns', 'bad name!'], /--dns "bad name!" is not a DNS name/],
  ];
  for (const [extra, message] of bad) {
    const args = ['rotate', '--dir', dir, '--name', 'tessera-webhook', '--dns', 'hook.svc', ...extra];
    t.throws(() => quietly(() => certsCommand(args)), message, extra.join(' '));
    t.same(contents(dir), before, `${extra.join(' ')}: the directory is untouched`);
  }
  t.throws(() => certsCommand(['rotate', '--dir', dir, '--name', '']), UsageError);
  t.throws(() => certsCommand(['rotate', '--dir', dir, '--name', 'x']), /name at least one --dns or --ip/);
  t.same(contents(dir), before);
});

t.test('a state that would break clients is never written', async (t) => {
  const dir = issued(t);
  const before = contents(dir);
  const state = loadState(dir)!;
  t.throws(() => saveState(dir, { ...state, bundle: [] }), /refusing to write .*the CA bundle would be empty/);
  const other = initialState({ ...DEFAULT_ROTATION, commonName: 'x', dnsNames: ['x'], ips: [] }, new Date());
  t.throws(
    () => saveState(dir, { ...state, leaf: other.leaf }),
    /serving certificate is not valid .* under the CA bundle/,
  );
  t.throws(
    () => saveState(dir, { ...state, leaf: { certPem: state.leaf.certPem, keyPem: other.leaf.keyPem } }),
    /serving certificate's key does not match/,
  );
  // Ten years on every CA has expired: rotate would empty the bundle, so it refuses instead.
  t.throws(
    () =>
      quietly(() =>
        certsCommand(['rotate', '--dir', dir, '--name', 'tessera-webhook', '--dns', 'hook.svc', '--now', '2045-01-01']),
      ),
    /refusing to write .*the signing CA expired on 2036-.*issue afresh/,
  );
  t.same(contents(dir), before, 'untouched');
  t.same(
    readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary files left',
  );
});

t.test('rotate re-issues the serving certificate when --name, --dns or --ip change', async (t) => {
  const dir = issued(t);
  const first = loadState(dir)!;
  const same = quietly(() => certsCommand(['rotate', '--dir', dir, '--name', 'tessera-webhook', '--dns', 'hook.svc']));
  t.equal(same.out, 'nothing to rotate');
  const more = quietly(() =>
    certsCommand([
      'rotate',
      '--dir',
      dir,
      '--name',
      'tessera-webhook',
      '--dns',
      'hook.svc',
      '--dns',
      'hook.tessera-system.svc',
      '--ip',
      '::1',
    ]),
  );
  t.match(more.out, /re-issued the serving certificate for tessera-webhook, hook.svc, hook.tessera-system.svc, ::1/);
  const second = loadState(dir)!;
  t.not(second.leaf.certPem, first.leaf.certPem);
  t.equal(second.ca.certPem, first.ca.certPem, 'same CA: clients keep trusting it');
  t.ok(trusted(second.leaf.certPem, first.bundle, new Date()), 'trusted by the bundle clients already hold');
  t.match(
    new X509Certificate(second.leaf.certPem).subjectAltName,
    /DNS:hook.tessera-system.svc.*IP Address:0:0:0:0:0:0:0:1/,
  );
  const again = quietly(() =>
    certsCommand([
      'rotate',
      '--dir',
      dir,
      '--name',
      'tessera-webhook',
      '--ip',
      '0:0::1',
      '--dns',
      'HOOK.tessera-system.svc',
      '--dns',
      'hook.svc',
    ]),
  );
  t.equal(again.out, 'nothing to rotate', 'the same names in another order or spelling change nothing');
  const renamed = quietly(() => certsCommand(['rotate', '--dir', dir, '--name', 'tessera-hook', '--dns', 'hook.svc']));
  t.match(renamed.out, /re-issued the serving certificate for tessera-hook, hook.svc/);
  t.match(new X509Certificate(loadState(dir)!.leaf.certPem).subject, /CN=tessera-hook/);
});
