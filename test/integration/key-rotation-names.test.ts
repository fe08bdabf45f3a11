/**
 * Key rotation and group names (encryption at rest). docs/operations.md: rotating is adding the new
 * key, restarting every node with it as `activeKeyId`, and keeping the old key until every row
 * sealed with it has aged out. A group's name is sealed when the group is made or renamed and never
 * ages out, so each store seals every name under the active key at start-up (names stored clear
 * before encryption was turned on too). Before, removing the old key as documented made
 * `list_conversations` fail for every member of a group named before the switch, and the group
 * could not be renamed either. A name whose key was removed too early is repaired by a rename.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { ContentCipher } from '../../src/store/content-cipher.js';
import { messageId } from '../../src/chat/message-id.js';
import type { NewMessage } from '../../src/store/store.js';
import { storeBackends, type StoreBackend } from '../helpers/store-backends.js';

const T = 'default';
const OPTS = { maxInboxSize: 1000 };
const LIMITS = { maxGroupMembers: 10, maxGroupsPerUser: 10 };
const K1 = randomBytes(32);
const K2 = randomBytes(32);
const before = new ContentCipher({ activeKeyId: 'k1', keys: { k1: K1 } });
const rotated = new ContentCipher({ activeKeyId: 'k2', keys: { k1: K1, k2: K2 } });
const afterRemoval = new ContentCipher({ activeKeyId: 'k2', keys: { k2: K2 } });

/** key_id of every events row, and of the conversation row `uuid`. */
async function keyIds(backend: StoreBackend, conversationId: string): Promise<{ events: (string | null)[]; conversation: string | null }> {
  const events = (await backend.rows<{ key_id: string | null }>((t) => `SELECT key_id FROM ${t('events')}`)).map((r) => r.key_id);
  const [conv] = await backend.rows<{ key_id: string | null }>((t, p) => `SELECT key_id FROM ${t('conversations')} WHERE uuid = ${p.uuid(1)}`, [conversationId]);
  return { events, conversation: conv!.key_id };
}

const backends = storeBackends('key-names');
after(async () => {
  for (const b of backends) await b.teardown();
});

for (const backend of backends) {
  describe(`key rotation and group names (${backend.name})`, () => {
    test('once retention removed every event sealed with the old key, removing that key leaves groups listable and renamable', async () => {
      const [alice, bob] = [randomUUID(), randomUUID()];
      const gid = randomUUID();
      // Before the switch (an hour ago): the group is made and used under k1.
      let t = Date.now() - 3_600_000;
      const ev = (): { eventId: string; timestamp: number } => ({ eventId: messageId(++t), timestamp: t });
      const msg = (from: string, ts: number): NewMessage => ({ id: messageId(ts), tenantId: T, senderId: from, to: { conversationId: gid }, timestamp: ts, content: `hello ${ts}`, mentions: [], hashtags: [], links: [] });

      const s1 = await backend.open(before);
      try {
        assert.equal((await s1.createGroup({ tenantId: T, actorId: alice, ...ev(), conversationId: gid, name: 'Falcon', memberIds: [bob] }, LIMITS)).status, 'ok');
        assert.equal((await s1.appendMessages([msg(alice, ++t)], OPTS))[0]?.status, 'stored');
      } finally {
        await s1.close();
      }
      const switchedAt = ++t;

      // After the switch: every node runs with k2 active (k1 kept), new rows are sealed with k2.
      const s2 = await backend.open(rotated);
      try {
        assert.equal((await s2.appendMessages([msg(bob, Date.now())], OPTS))[0]?.status, 'stored');
        // Retention (chat.retentionDays after the switch) deletes every event from before it.
        assert.ok((await s2.pruneOlderThan(switchedAt)) >= 2);
      } finally {
        await s2.close();
      }
      const keys = await keyIds(backend, gid);
      assert.deepEqual(keys.events.filter((k) => k === 'k1'), [], 'no event sealed with k1 is left: by the documented procedure k1 may go');

      // k1 removed, as docs/operations.md allows now.
      const s3 = await backend.open(afterRemoval);
      try {
        assert.equal(keys.conversation, 'k2', 'the name was sealed again under the active key when the store opened with k2');
        const list = await s3.listConversations(T, bob, { limit: 10 });
        assert.equal(list.conversations.find((c) => c.conversationId === gid)?.name, 'Falcon');
        const renamed = await s3.renameGroup({ tenantId: T, actorId: alice, ...ev(), timestamp: Date.now(), conversationId: gid, name: 'Kestrel' });
        assert.equal(renamed.status, 'ok');
      } finally {
        await s3.close();
      }
    });

    test('a name stored clear is sealed once encryption is on; one whose key was removed too early is repaired by a rename', async () => {
      const [alice, bob] = [randomUUID(), randomUUID()];
      const clear = randomUUID();
      const orphan = randomUUID();
      let t = Date.now();
      const ev = (): { eventId: string; timestamp: number } => ({ eventId: messageId(++t), timestamp: t });
      const plain = await backend.open();
      try {
        assert.equal((await plain.createGroup({ tenantId: T, actorId: alice, ...ev(), conversationId: clear, name: 'Clear', memberIds: [bob] }, LIMITS)).status, 'ok');
      } finally {
        await plain.close();
      }
      const onlyK1 = await backend.open(before);
      try {
        assert.equal((await onlyK1.createGroup({ tenantId: T, actorId: alice, ...ev(), conversationId: orphan, name: 'Orphan', memberIds: [bob] }, LIMITS)).status, 'ok');
      } finally {
        await onlyK1.close();
      }
      assert.equal((await keyIds(backend, clear)).conversation, 'k1', 'the clear name was sealed when the store opened with a key');
      // k1 removed without ever running with both keys: the orphan's name cannot be read…
      const s = await backend.open(afterRemoval);
      try {
        assert.equal((await keyIds(backend, orphan)).conversation, 'k1', 'left as it was: nothing can open it');
        await assert.rejects(s.listConversations(T, bob, { limit: 10 }), { name: 'UnknownKeyError' });
        // …and a rename, which needs no old name to compare with, repairs it.
        assert.equal((await s.renameGroup({ tenantId: T, actorId: alice, ...ev(), conversationId: orphan, name: 'Found' })).status, 'ok');
        assert.equal((await s.renameGroup({ tenantId: T, actorId: alice, ...ev(), conversationId: clear, name: 'Clear again' })).status, 'ok');
        const names = (await s.listConversations(T, bob, { limit: 10 })).conversations.map((c) => c.name).sort();
        assert.deepEqual(names, ['Clear again', 'Found']);
      } finally {
        await s.close();
      }
    });
  });
}
