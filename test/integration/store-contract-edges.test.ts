/**
 * The store contract on inputs the chat layer does not produce today but the contract allows, the
 * same on SQLite and PostgreSQL: users named by an upper-case uuid (PostgreSQL lowercased them;
 * SQLite re-added a current member, removed nobody, found no set_role target and named the actor
 * as given in the events), and one batch whose messages' times are
 * out of order (a clock stepped back: PostgreSQL kept the last time as the conversation's
 * `lastActivityAt`, not the newest).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { storeBackends } from '../helpers/store-backends.js';
import type { NewMessage } from '../../src/store/store.js';

const T = 'default';
const GL = { maxGroupMembers: 10, maxGroupsPerUser: 10 };
const change = (actorId: string, conversationId: string) => ({ tenantId: T, actorId, eventId: randomUUID(), timestamp: Date.now(), conversationId });
const dm = (from: string, to: string, timestamp: number): NewMessage => ({ id: randomUUID(), tenantId: T, senderId: from, to: { peerId: to }, timestamp, content: `at ${timestamp}`, mentions: [], hashtags: [], links: [] });

for (const be of storeBackends('edges')) describe(be.name, () => {
  after(() => be.teardown());

  test(`${be.name}: group changes name users by uuid whatever its case, and their events name them lowercase`, async () => {
    const s = await be.open();
    try {
      const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
      const g = randomUUID();
      const created = await s.createGroup({ ...change(a.toUpperCase(), g), name: 'g', memberIds: [b.toUpperCase(), a] }, GL);
      assert.equal(created.status, 'ok');
      assert.deepEqual(created.status === 'ok' ? [...created.event.userIds].sort() : [], [a, b].sort(), 'the creator once, ids lowercase');
      assert.equal((await s.addMembers({ ...change(a, g), userIds: [b.toUpperCase()] }, GL)).status, 'unchanged', 'b is a member already');
      assert.equal((await s.removeMembers({ ...change(a, g), userIds: [b.toUpperCase(), c] })).status, 'ok', 'b is removed');
      const added = await s.addMembers({ ...change(a.toUpperCase(), g), userIds: [b.toUpperCase()] }, GL);
      assert.equal(added.status === 'ok' ? added.event.actorId : added.status, a, 'added back; the actor named lowercase');
      assert.equal((await s.setRole({ ...change(a.toUpperCase(), g), userId: b.toUpperCase(), role: 'admin' })).status, 'ok', 'set_role finds its target');
      const renamed = await s.renameGroup({ ...change(b.toUpperCase(), g), name: 'h' });
      assert.equal(renamed.status === 'ok' ? renamed.event.actorId : renamed.status, b, 'the new admin renames');
      const left = await s.leaveGroup({ ...change(b.toUpperCase(), g) });
      assert.equal(left.status === 'ok' ? left.event.actorId : left.status, b);
    } finally {
      await s.close();
    }
  });

  test(`${be.name}: lastActivityAt is the newest event time, whatever the order of one batch`, async () => {
    const s = await be.open();
    try {
      const [a, b] = [randomUUID(), randomUUID()];
      const t0 = 1_790_000_000_000;
      assert.equal((await s.appendMessages([dm(a, b, t0)], { maxInboxSize: 100 }))[0]!.status, 'stored');
      const outs = await s.appendMessages([dm(a, b, t0 + 200), dm(b, a, t0 + 100)], { maxInboxSize: 100 });
      assert.deepEqual(outs.map((o) => o.status), ['stored', 'stored']);
      const [conv] = (await s.listConversations(T, a, { limit: 5 })).conversations;
      assert.equal(conv!.lastActivityAt, t0 + 200);
    } finally {
      await s.close();
    }
  });
});
