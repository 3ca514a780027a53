// The leader label follows the Lease: removed at start (a restarted container's pod may still carry it), set on
// leading, removed on stepping down; a failed patch is tried again at the next sync, and the last wish wins.

import t from 'tap';
import { pino } from 'pino';
import { LEADER_ROLE, RoleLabel } from '../../../extender/role-label.ts';

const log = pino({ level: 'silent' });

function pod() {
  const state = { label: LEADER_ROLE as string | null, patches: 0, failNext: 0 };
  const patch = async (value: string | null) => {
    await new Promise((r) => setTimeout(r, 1));
    state.patches++;
    if (state.failNext > 0) {
      state.failNext--;
      throw new Error('the API server answered 503');
    }
    state.label = value;
  };
  return { state, patch };
}

t.test('the label is removed at start, set when leading, removed when not', async (t) => {
  const { state, patch } = pod();
  const role = new RoleLabel(patch, log);
  await role.want(false);
  t.equal(state.label, null, 'a stale label from a previous container is removed');
  t.equal(role.labelled, false);
  await role.want(true);
  t.equal(state.label, LEADER_ROLE);
  t.equal(role.labelled, true);
  const patches = state.patches;
  await role.want(true);
  t.equal(state.patches, patches, 'no patch when the pod already carries it');
  await role.want(false);
  t.equal(state.label, null);
});

t.test('a failed patch is tried again; concurrent wishes end in the last one', async (t) => {
  const { state, patch } = pod();
  const role = new RoleLabel(patch, log);
  state.failNext = 1;
  await role.want(false);
  t.equal(state.label, LEADER_ROLE, 'the first removal failed');
  t.equal(role.labelled, false, 'and the label state is unknown, not assumed');
  await role.sync();
  t.equal(state.label, null, 'the next sync removes it');

  const wishes = [role.want(true), role.want(false), role.want(true)];
  await Promise.all(wishes);
  await role.sync();
  t.equal(state.label, LEADER_ROLE, 'the last wish holds');
  t.equal(role.labelled, true);
});
