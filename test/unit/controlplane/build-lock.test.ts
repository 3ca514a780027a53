import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { withBuildLock } from '../../../test/controlplane/build-lock.ts';

function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

t.test('a lock whose owner process is gone is taken over at once, and says so', (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'build-lock-')), 'tool');
  mkdirSync(`${dir}.lock`);
  const pid = deadPid();
  writeFileSync(
    join(`${dir}.lock`, 'owner.json'),
    JSON.stringify({ pid, host: hostname(), since: new Date().toISOString(), building: 'tool' }),
  );
  const lines: string[] = [];
  let built = false;
  const started = Date.now();
  withBuildLock(
    dir,
    () => built,
    () => {
      built = true;
    },
    (l) => lines.push(l),
  );
  t.ok(built, 'the build ran');
  t.ok(Date.now() - started < 5000, 'without waiting');
  t.match(lines.join('\n'), new RegExp(`process ${pid}, is gone`));
  t.notOk(existsSync(`${dir}.lock`), 'the lock is released');
  t.end();
});

t.test('a lock held by a live process is waited for, with its owner named, until the result appears', (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'build-lock-')), 'tool');
  mkdirSync(`${dir}.lock`);
  writeFileSync(
    join(`${dir}.lock`, 'owner.json'),
    JSON.stringify({ pid: process.pid, host: hostname(), since: '2026-01-01T00:00:00Z', building: 'tool' }),
  );
  // The owner is this very process, so the lock is live; the result appears while the waiter sleeps.
  const lines: string[] = [];
  let checks = 0;
  let built = false;
  withBuildLock(
    dir,
    () => lines.length > 0 && ++checks > 1,
    () => {
      built = true;
    },
    (l) => lines.push(l),
    50,
  );
  t.notOk(built, 'the waiter did not build');
  t.match(lines.join('\n'), /waiting for tool: .* is held by process \d+ on .*, building since 2026-01-01/);
  t.end();
});
