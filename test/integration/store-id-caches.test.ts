/**
 * The stores' id caches (user ids, conversations, direct pairs) are bounded: they start over at
 * `idCacheLimit` (100 000 by default), on SQLite and PostgreSQL alike. They grew with every user
 * and conversation ever seen, for the life of the process — on PostgreSQL through the ids a node
 * created itself, added after each commit without the check. Reads after a start-over are the same.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { messageId } from '../../src/chat/message-id.js';
import { PG_URL } from '../helpers/harness.js';

type CachingStore = SqliteStore | PostgresStore;

async function caches(store: CachingStore): Promise<void> {
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
  // Everything still reads right through the database.
  for (const peer of peers) {
    const h = await store.history('default', peer, { peerId: sender }, { limit: 5, groupHistory: 'since_join' });
    assert.deepEqual(h?.events.map((e) => ('content' in e ? e.content : '')), [`to ${peer}`]);
  }
}

test('SQLite: id caches start over at idCacheLimit; every read after it is the same', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-id-caches-'));
  const store = new SqliteStore(join(dir, 'db.sqlite'), { idCacheLimit: 10 });
  try {
    await caches(store);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PostgreSQL: id caches, those of rows this node created included, start over at idCacheLimit; every read after it is the same', async () => {
  const schema = `rampart_test_${randomBytes(6).toString('hex')}`;
  const store = new PostgresStore(PG_URL, { schema, idCacheLimit: 10, pool: { max: 2 } });
  const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
  try {
    await caches(store);
  } finally {
    await store.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => admin.end());
  }
});
