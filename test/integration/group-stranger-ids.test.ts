/**
 * `remove_members` and `set_role` naming users who were never in the group change nothing and
 * store nothing: no `users` row is made for such an id (PostgreSQL resolved, and so inserted,
 * every named id — an admin could add thousands of rows a minute), on both stores. Nor does a
 * refused `add_members` or `create_group` (a plain member adding, a group limit reached): both
 * stores resolved the ids first and committed whatever the outcome.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { messageId } from '../../src/chat/message-id.js';
import type { Store } from '../../src/store/store.js';
import { storeBackends, type StoreBackend } from '../helpers/store-backends.js';

const T = 'default';
const LIMITS = { maxGroupMembers: 10, maxGroupsPerUser: 10 };
/** Every user in one group at most: the refusals below are the limit's. */
const ONE_GROUP = { maxGroupMembers: 100, maxGroupsPerUser: 1 };

const backends = storeBackends('stranger-ids');
const userRows = async (b: StoreBackend): Promise<number> => Number((await b.rows<{ n: number | string }>((t) => `SELECT count(*) AS n FROM ${t('users')}`))[0]!.n);
after(async () => {
  for (const b of backends) await b.teardown();
});
/** Each group change's event id and time, later for every call. */
let clock = Date.now();
const ev = (): { eventId: string; timestamp: number } => ({ eventId: messageId(++clock), timestamp: clock });
const strangers = (n = 50): string[] => Array.from({ length: n }, () => randomUUID());
/** A store on `backend` for `work`, closed after it. */
async function withStore(backend: StoreBackend, work: (s: Store) => Promise<void>): Promise<void> {
  const s = await backend.open();
  try {
    await work(s);
  } finally {
    await s.close();
  }
}

for (const backend of backends) {
  describe(`ids of users never in the group (${backend.name})`, () => {
    test('remove_members and set_role naming strangers: unchanged / forbidden, and no users row for them', () =>
      withStore(backend, async (s) => {
        const [owner, member] = [randomUUID(), randomUUID()];
        const conversationId = randomUUID();
        assert.equal((await s.createGroup({ tenantId: T, actorId: owner, ...ev(), conversationId, name: 'g', memberIds: [member] }, LIMITS)).status, 'ok');
        const before = await userRows(backend);
        const named = strangers();
        assert.equal((await s.removeMembers({ tenantId: T, actorId: owner, ...ev(), conversationId, userIds: named })).status, 'unchanged');
        assert.equal((await s.setRole({ tenantId: T, actorId: owner, ...ev(), conversationId, userId: randomUUID(), role: 'admin' })).status, 'forbidden');
        assert.equal(await userRows(backend), before, 'no row for an id that never was a member');
        // A member named beside strangers is still found, and removed.
        const removed = await s.removeMembers({ tenantId: T, actorId: owner, ...ev(), conversationId, userIds: [member, ...named.slice(0, 3)] });
        assert.equal(removed.status, 'ok');
        assert.deepEqual(removed.status === 'ok' ? removed.event.userIds : [], [member]);
      }));

    test('a plain member adding strangers: forbidden, and no users rows', () =>
      withStore(backend, async (s) => {
        const [owner, member] = [randomUUID(), randomUUID()];
        const conversationId = randomUUID();
        assert.equal((await s.createGroup({ tenantId: T, actorId: owner, ...ev(), conversationId, name: 'g', memberIds: [member] }, ONE_GROUP)).status, 'ok');
        const before = await userRows(backend);
        assert.equal((await s.addMembers({ tenantId: T, actorId: member, ...ev(), conversationId, userIds: strangers() }, ONE_GROUP)).status, 'forbidden');
        assert.equal(await userRows(backend), before, 'rows after a forbidden add_members');
      }));

    test('an owner add refused too_many_groups: no users rows for the strangers it named', () =>
      withStore(backend, async (s) => {
        const [owner, busy] = [randomUUID(), randomUUID()];
        assert.equal((await s.createGroup({ tenantId: T, actorId: busy, ...ev(), conversationId: randomUUID(), name: 'b', memberIds: [] }, ONE_GROUP)).status, 'ok');
        const conversationId = randomUUID();
        assert.equal((await s.createGroup({ tenantId: T, actorId: owner, ...ev(), conversationId, name: 'g', memberIds: [] }, ONE_GROUP)).status, 'ok');
        const before = await userRows(backend);
        assert.equal((await s.addMembers({ tenantId: T, actorId: owner, ...ev(), conversationId, userIds: [...strangers(), busy] }, ONE_GROUP)).status, 'too_many_groups');
        assert.equal(await userRows(backend), before, 'rows after a refused add_members');
      }));

    test('a create refused too_many_groups: no users rows for its strangers', () =>
      withStore(backend, async (s) => {
        const owner = randomUUID();
        assert.equal((await s.createGroup({ tenantId: T, actorId: owner, ...ev(), conversationId: randomUUID(), name: 'g', memberIds: [] }, ONE_GROUP)).status, 'ok');
        const before = await userRows(backend);
        assert.equal((await s.createGroup({ tenantId: T, actorId: owner, ...ev(), conversationId: randomUUID(), name: 'g2', memberIds: strangers() }, ONE_GROUP)).status, 'too_many_groups');
        assert.equal(await userRows(backend), before, 'rows after a refused create_group');
      }));
  });
}
