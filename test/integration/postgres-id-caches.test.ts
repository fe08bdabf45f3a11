/**
 * The PostgreSQL store's id caches (users, direct pairs, conversations) are bounded: they start
 * over at `idCacheLimit` (100 000 by default), like the SQLite adapter's. The ids a node created
 * itself were added after each commit without the check, so on a node that creates the users it
 * sees (one node, a growth phase) every user and direct pair ever created stayed in memory.
 * Reads after a start-over are the same.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { messageId } from '../../src/chat/message-id.js';

const PG_URL = process.env.RAMPART_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

test('id caches of rows this node creates start over at idCacheLimit; every read after it is the same', async () => {
  const schema = `rampart_test_${randomBytes(6).toString('hex')}`;
  const store = new PostgresStore(PG_URL, { schema, idCacheLimit: 10, pool: { max: 2 } });
  const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
  try {
    await store.init();
    const sender = randomUUID();
    const peers = Array.from({ length: 25 }, () => randomUUID());
    let t = Date.now();
    for (const peer of peers) {
      const [out] = await store.appendMessages([{ id: messageId(++t), tenantId: 'default', senderId: sender, to: { peerId: peer }, timestamp: t, content: `to ${peer}`, mentions: [], hashtags: [], links: [] }], { maxInboxSize: 100 });
      assert.equal(out?.status, 'stored');
      const cached = store.cachedIds();
      assert.ok(cached.users <= 10 && cached.conversations <= 10 && cached.directPairs <= 10, JSON.stringify(cached));
    }
    for (const peer of peers) {
      const h = await store.history('default', peer, { peerId: sender }, { limit: 5, groupHistory: 'since_join' });
      assert.deepEqual(h?.events.map((e) => ('content' in e ? e.content : '')), [`to ${peer}`]);
    }
  } finally {
    await store.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => admin.end());
  }
});
