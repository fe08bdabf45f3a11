/**
 * list_conversations pages by the cursor (lastActivityAt, conversationId). Edits and deletes are
 * changes of a message, not activity: they take their seq (lastSeq keeps counting every event) but
 * do not move lastActivityAt — an edit a member is not even sent (since_join, a message from before
 * they joined) would otherwise move the conversation above their cursor and drop it from their
 * paging without any frame. Messages and membership changes stay activity. Run on SQLite and
 * PostgreSQL.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { storeBackends } from '../helpers/store-backends.js';
import { GL, OPTS, T, change, msg, now, ok, send } from '../helpers/store-builders.js';
import { messageId } from '../../src/chat/message-id.js';
import type { ConversationSummary, MessageChangeOutcome, Store } from '../../src/store/store.js';

const CHANGE = { ...OPTS, editWindowMs: 60_000, groupHistory: 'since_join' as const };
function applied(outcome: MessageChangeOutcome): Extract<MessageChangeOutcome, { status: 'ok' }> {
  assert.equal(outcome.status, 'ok', JSON.stringify(outcome));
  return outcome as Extract<MessageChangeOutcome, { status: 'ok' }>;
}
const edit = (s: Store, actor: string, target: string, content: string) => {
  const ts = now();
  return s.editMessage({ tenantId: T, actorId: actor, eventId: messageId(ts), messageId: target, timestamp: ts, body: { content, mentions: [], hashtags: [], links: [] } }, CHANGE);
};
const del = (s: Store, actor: string, target: string) => {
  const ts = now();
  return s.deleteMessage({ tenantId: T, actorId: actor, eventId: messageId(ts), messageId: target, timestamp: ts }, CHANGE);
};
async function summary(s: Store, user: string, conversationId: string): Promise<ConversationSummary> {
  const found = (await s.listConversations(T, user, { limit: 100, groupHistory: 'since_join' })).conversations.find((x) => x.conversationId === conversationId);
  assert.ok(found !== undefined, 'listed');
  return found;
}

for (const be of storeBackends('list-paging-edits')) describe(be.name, () => {
  after(() => be.teardown());

  test(`${be.name}: an edit a member is not sent does not move the conversation under their paging cursor`, async () => {
    const s = await be.open();
    try {
      const [a, c] = [randomUUID(), randomUUID()];
      const g = randomUUID();
      ok(await s.createGroup({ ...change(a, g), name: 'old group', memberIds: [] }, GL));
      const old = await send(s, msg(a, { conversationId: g }));
      ok(await s.addMembers({ ...change(a, g), userIds: [c] }, GL)); // c joins after `old`
      await send(s, msg(randomUUID(), { peerId: c }));
      await send(s, msg(randomUUID(), { peerId: c }));

      const page1 = await s.listConversations(T, c, { limit: 2, groupHistory: 'since_join' });
      assert.equal(page1.conversations.length, 2);
      assert.ok(page1.nextCursor !== undefined);
      assert.ok(!page1.conversations.some((x) => x.conversationId === g));

      const e = applied(await edit(s, a, old.id, 'fixed typo'));
      assert.deepEqual(e.deliveries.map((d) => d.userId), [a], 'c is sent nothing');
      const d = applied(await del(s, a, old.id)); // a delete reaches c, but is no activity either
      assert.ok(d.deliveries.some((x) => x.userId === c));

      const page2 = await s.listConversations(T, c, { limit: 2, before: page1.nextCursor!, groupHistory: 'since_join' });
      const listed = [...page1.conversations, ...page2.conversations].map((x) => x.conversationId);
      assert.equal(new Set(listed).size, 3, 'three conversations, each once');
      assert.ok(listed.includes(g), 'the group is listed by the paging');
    } finally {
      await s.close();
    }
  });

  test(`${be.name}: after an edit and a delete, lastSeq counts them, lastActivityAt stays, lastMessage shows the current body / tombstone`, async () => {
    const s = await be.open();
    try {
      const [a, b] = [randomUUID(), randomUUID()];
      const m1 = await send(s, msg(a, { peerId: b }, 'first'));
      const m2 = await send(s, msg(b, { peerId: a }, 'second'));
      const conv = m2.conversationId;
      const start = await summary(s, a, conv);
      assert.deepEqual({ lastSeq: start.lastSeq, lastActivityAt: start.lastActivityAt }, { lastSeq: m2.seq, lastActivityAt: m2.timestamp });

      const e = applied(await edit(s, b, m2.id, 'second, edited'));
      const afterEdit = await summary(s, a, conv);
      assert.equal(afterEdit.lastSeq, e.event.seq, 'the edit took its seq');
      assert.equal(afterEdit.lastActivityAt, m2.timestamp, 'an edit is no activity');
      assert.equal(afterEdit.lastMessage?.id, m2.id);
      assert.equal(afterEdit.lastMessage?.content, 'second, edited');
      assert.equal(afterEdit.lastMessage?.editedAt, e.event.timestamp);

      const d = applied(await del(s, a, m1.id));
      assert.equal(d.event.seq, e.event.seq + 1, 'the seq counter keeps advancing');
      const afterDelete = await summary(s, b, conv);
      assert.equal(afterDelete.lastSeq, d.event.seq);
      assert.equal(afterDelete.lastActivityAt, m2.timestamp, 'a delete is no activity');
      assert.equal(afterDelete.lastMessage?.content, 'second, edited', 'still the newest message');

      const d2 = applied(await del(s, b, m2.id));
      const tomb = await summary(s, a, conv);
      assert.equal(tomb.lastSeq, d2.event.seq);
      assert.equal(tomb.lastActivityAt, m2.timestamp);
      assert.equal(tomb.lastMessage?.id, m2.id);
      assert.equal(tomb.lastMessage?.deletedAt, d2.event.timestamp, 'the newest message as its tombstone');
      assert.equal(tomb.lastMessage?.content, '');

      // The next message follows the changes' seqs and is activity again.
      const m3 = await send(s, msg(a, { peerId: b }, 'third'));
      assert.equal(m3.seq, d2.event.seq + 1);
      const last = await summary(s, b, conv);
      assert.deepEqual({ lastSeq: last.lastSeq, lastActivityAt: last.lastActivityAt }, { lastSeq: m3.seq, lastActivityAt: m3.timestamp });
    } finally {
      await s.close();
    }
  });

  test(`${be.name}: membership changes stay activity`, async () => {
    const s = await be.open();
    try {
      const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
      const g = randomUUID();
      const created = ok(await s.createGroup({ ...change(a, g), name: 'g', memberIds: [b] }, GL));
      assert.equal((await summary(s, a, g)).lastActivityAt, created.timestamp);
      const m = await send(s, msg(b, { conversationId: g }));
      assert.equal((await summary(s, a, g)).lastActivityAt, m.timestamp);
      const added = ok(await s.addMembers({ ...change(a, g), userIds: [c] }, GL));
      const listed = await summary(s, c, g);
      assert.deepEqual({ lastSeq: listed.lastSeq, lastActivityAt: listed.lastActivityAt }, { lastSeq: added.seq, lastActivityAt: added.timestamp });
      const left = ok(await s.leaveGroup(change(b, g)));
      assert.equal((await summary(s, a, g)).lastActivityAt, left.timestamp);
    } finally {
      await s.close();
    }
  });
});
