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
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ContentCipher } from '../../src/store/content-cipher.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { messageId } from '../../src/chat/message-id.js';
import type { NewMessage, Store } from '../../src/store/store.js';
import { PG_URL } from '../helpers/harness.js';

const T = 'default';
const OPTS = { maxInboxSize: 1000 };
const LIMITS = { maxGroupMembers: 10, maxGroupsPerUser: 10 };
const K1 = randomBytes(32);
const K2 = randomBytes(32);
const before = new ContentCipher({ activeKeyId: 'k1', keys: { k1: K1 } });
const rotated = new ContentCipher({ activeKeyId: 'k2', keys: { k1: K1, k2: K2 } });
const afterRemoval = new ContentCipher({ activeKeyId: 'k2', keys: { k2: K2 } });

interface Backend {
  name: string;
  open(cipher: ContentCipher | undefined): Promise<Store>;
  /** key_id of every events row, and of the conversation row `uuid`. */
  keyIds(conversationId: string): Promise<{ events: (string | null)[]; conversation: string | null }>;
  teardown(): Promise<void>;
}

function sqlite(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-key-names-'));
  const file = join(dir, 'db.sqlite');
  return {
    name: 'sqlite',
    async open(cipher) {
      const s = new SqliteStore(file, cipher ? { cipher } : {});
      await s.init();
      return s;
    },
    async keyIds(conversationId) {
      const { Database } = await import('../../src/store/sqlite-driver.js');
      const db = new Database(file, { readonly: true, fileMustExist: true });
      try {
        const events = (db.prepare('SELECT key_id FROM events').all() as { key_id: string | null }[]).map((r) => r.key_id);
        const conv = db.prepare(`SELECT key_id FROM conversations WHERE uuid = unhex(replace(?, '-', ''))`).get(conversationId) as { key_id: string | null };
        return { events, conversation: conv.key_id };
      } finally {
        db.close();
      }
    },
    async teardown() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgres(): Backend {
  const schema = `rampart_key_names_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
  return {
    name: 'postgres',
    async open(cipher) {
      const s = new PostgresStore(PG_URL, { schema, pool: { max: 3 }, ...(cipher ? { cipher } : {}) });
      await s.init();
      return s;
    },
    async keyIds(conversationId) {
      const events = (await admin.query(`SELECT key_id FROM "${schema}".events`)).rows.map((r: { key_id: string | null }) => r.key_id);
      const conv = (await admin.query(`SELECT key_id FROM "${schema}".conversations WHERE uuid = $1`, [conversationId])).rows[0] as { key_id: string | null };
      return { events, conversation: conv.key_id };
    },
    async teardown() {
      try {
        await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await admin.end();
      }
    },
  };
}

const backends = [sqlite(), postgres()];
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
      const keys = await backend.keyIds(gid);
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
      const plain = await backend.open(undefined);
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
      assert.equal((await backend.keyIds(clear)).conversation, 'k1', 'the clear name was sealed when the store opened with a key');
      // k1 removed without ever running with both keys: the orphan's name cannot be read…
      const s = await backend.open(afterRemoval);
      try {
        assert.equal((await backend.keyIds(orphan)).conversation, 'k1', 'left as it was: nothing can open it');
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
