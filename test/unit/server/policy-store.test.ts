// The policy store keeps the last good policy in force while the files are broken: in memory, and with a cache
// directory across a restart of the process (a container restart keeps its emptyDir).

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { PolicyStore } from '../../../server/policy-store.ts';

const EXAMPLE = readFileSync(
  fileURLToPath(new URL('../../../../shared/examples/policy.yaml', import.meta.url)),
  'utf8',
);
const silent = pino({ level: 'silent' });

function fixture(t: Test): { policy: string; cache: string } {
  const root = mkdtempSync(join(tmpdir(), 'tessera-store-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const policy = join(root, 'policy');
  mkdirSync(policy);
  writeFileSync(join(policy, 'policy.yaml'), EXAMPLE);
  return { policy, cache: join(root, 'cache') };
}

t.test('a restart while the files are broken serves the last good policy from the cache directory', async (t) => {
  const { policy, cache } = fixture(t);
  const first = new PolicyStore(policy, silent, cache);
  t.ok(first.reload());
  const good = first.status().revision;
  writeFileSync(join(policy, 'policy.yaml'), `${EXAMPLE}\n  broken: [`);
  t.notOk(first.reload());
  t.match(first.status(), { state: 'stale', revision: good });

  const restarted = new PolicyStore(policy, silent, cache);
  const changes: string[] = [];
  restarted.on('change', (p: { revision: string }) => changes.push(p.revision));
  t.notOk(restarted.reload(), 'the files on disk are still not in force');
  t.match(restarted.status(), { state: 'stale', revision: good, problems: [/./] });
  t.equal(restarted.current()?.revision, good);
  t.same(changes, [good], 'listeners hear of the restored policy');

  writeFileSync(join(policy, 'policy.yaml'), EXAMPLE.replace('research', 'research2'));
  t.ok(restarted.reload(), 'repaired files replace it');
  t.equal(restarted.status().state, 'valid');
  t.not(restarted.status().revision, good);
});

t.test('without a cache directory, or with an unusable cache, a restart into broken files has no policy', async (t) => {
  const { policy, cache } = fixture(t);
  writeFileSync(join(policy, 'policy.yaml'), 'tenants: [');
  const plain = new PolicyStore(policy, silent);
  t.notOk(plain.reload());
  t.match(plain.status(), { state: 'missing', revision: null });

  mkdirSync(cache);
  for (const content of [
    '{not json',
    '{"files": 3}',
    JSON.stringify({ files: [{ name: 'p.yaml', text: 'pools: 7' }] }),
  ]) {
    writeFileSync(join(cache, 'last-good-policy.json'), content);
    const store = new PolicyStore(policy, silent, cache);
    t.notOk(store.reload());
    t.match(store.status(), { state: 'missing', revision: null }, `cache ${content.slice(0, 20)} is ignored`);
    t.equal(store.current(), null);
  }
});

t.test('an unwritable cache directory costs nothing but the cache', async (t) => {
  const { policy } = fixture(t);
  const file = join(policy, 'policy.yaml'); // a file, not a directory: mkdir fails
  const store = new PolicyStore(policy, silent, join(file, 'cache'));
  t.ok(store.reload());
  t.equal(store.status().state, 'valid');
});
