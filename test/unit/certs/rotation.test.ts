import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import {
  DEFAULT_ROTATION,
  initialState,
  loadState,
  rotate,
  saveState,
  trusted,
  type RotationPolicy,
} from '../../../certs/rotation.ts';

const policy: RotationPolicy = {
  ...DEFAULT_ROTATION,
  caDays: 400,
  caRenewDays: 60,
  leafDays: 30,
  leafRenewDays: 10,
  overlapDays: 7,
  commonName: 'tessera-webhook',
  dnsNames: ['tessera-webhook.tessera-system.svc'],
  ips: ['127.0.0.1'],
};
const DAY = 86_400_000;

t.test(
  'rotation over three CA lifetimes never serves a leaf that clients holding the previous bundle distrust',
  async (t) => {
    const start = new Date('2026-01-01T00:00:00Z');
    let state = initialState(policy, start);
    t.ok(trusted(state.leaf.certPem, state.bundle, start));
    const leaf = new X509Certificate(state.leaf.certPem);
    t.match(leaf.subjectAltName, /DNS:tessera-webhook.tessera-system.svc, IP Address:127.0.0.1/);
    let leaves = 0;
    let cas = 0;
    let maxBundle = 1;
    for (let day = 2; day <= 1200; day += 2) {
      const now = new Date(start.getTime() + day * DAY);
      const step = rotate(state, policy, now);
      const previousBundle = state.bundle;
      if (step.state.leaf.certPem !== state.leaf.certPem) {
        leaves++;
        if (!trusted(step.state.leaf.certPem, previousBundle, now))
          t.fail(`day ${day}: new leaf not trusted by the previous bundle (${step.changes.join('; ')})`);
      }
      if (step.changes.some((c) => c.startsWith('introduced'))) cas++;
      if (!trusted(step.state.leaf.certPem, step.state.bundle, now))
        t.fail(`day ${day}: served leaf not trusted by the bundle`);
      maxBundle = Math.max(maxBundle, step.state.bundle.length);
      state = step.state;
    }
    t.ok(leaves >= 50, `leaves renewed ${leaves} times`);
    t.equal(cas, 3, 'a new CA introduced before each CA expiry');
    t.equal(maxBundle, 2, 'the bundle never holds more than the old and the new CA');
    t.same(
      rotate(state, policy, new Date(start.getTime() + 1201 * DAY)).changes,
      [],
      'nothing to do between deadlines',
    );
  },
);

t.test('state round-trips through a directory (a Secret mount)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-certs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.equal(loadState(dir), null);
  const state = initialState(policy, new Date());
  saveState(dir, state);
  t.same(loadState(dir), state);
});
