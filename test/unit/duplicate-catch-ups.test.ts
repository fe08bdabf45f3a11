/**
 * Which duplicates make the members read their timelines (src/chat/duplicate-catch-ups.ts): an
 * event stored within the window, once per event per window; old keys and replays cost nothing;
 * a failed member lookup is reported, never thrown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DuplicateCatchUps } from '../../src/chat/duplicate-catch-ups.js';
import type { Identity } from '../../src/auth/token-verifier.js';

const actor: Identity = { userId: 'a', role: undefined, tenantId: 't', expiresAt: 0 };

function setup(members: string[] | undefined | Error, clock: { now: number }) {
  const hinted: { tenantId: string; users: string[] }[] = [];
  const errors: unknown[] = [];
  const d = new DuplicateCatchUps({
    store: {
      membersIfMember: async () => {
        if (members instanceof Error) throw members;
        return members;
      },
    },
    publisher: { catchUp: (tenantId, users) => void hinted.push({ tenantId, users: [...users] }) },
    onError: (err) => void errors.push(err),
    windowMs: 300_000,
    now: () => clock.now,
    maxRemembered: 3,
  });
  return { d, hinted, errors };
}

test('recent events once per window; old events never; memory bounded', () => {
  const clock = { now: 1_000_000 };
  const { d } = setup([], clock);
  assert.equal(d.shouldCatchUp('m1', clock.now - 1000), true, 'a resend seconds after the lost commit');
  assert.equal(d.shouldCatchUp('m1', clock.now - 1000), false, 'the same event again within the window');
  assert.equal(d.shouldCatchUp('old', clock.now - 300_001), false, 'stored long ago: its members have long had it');
  clock.now += 300_000;
  assert.equal(d.shouldCatchUp('m1', clock.now - 200_000), true, 'a window later, still recent: once more');
  for (const id of ['a', 'b', 'c']) assert.equal(d.shouldCatchUp(id, clock.now), true);
  // Past the bound everything is forgotten at once: at worst one more read, never a missed one.
  assert.equal(d.shouldCatchUp('b', clock.now), true);
});

test('after(): the members of the conversation get the hint; not a member or an old event: nothing; a failed lookup is reported', async () => {
  const clock = { now: 1_000_000 };
  const ok = setup(['a', 'b', 'c'], clock);
  await ok.d.after(actor, { id: 'm1', timestamp: clock.now, conversationId: 'c1' });
  await ok.d.after(actor, { id: 'm1', timestamp: clock.now, conversationId: 'c1' });
  await ok.d.after(actor, { id: 'm0', timestamp: clock.now - 400_000, conversationId: 'c1' });
  assert.deepEqual(ok.hinted, [{ tenantId: 't', users: ['a', 'b', 'c'] }]);
  const gone = setup(undefined, clock);
  await gone.d.after(actor, { id: 'm2', timestamp: clock.now, conversationId: 'c1' });
  assert.deepEqual(gone.hinted, []);
  const failing = setup(new Error('db down'), clock);
  await failing.d.after(actor, { id: 'm3', timestamp: clock.now, conversationId: 'c1' });
  assert.equal(failing.errors.length, 1);
});
