/**
 * The SQLite store's id caches (user ids, conversations, direct pairs) are bounded: they start over
 * at `idCacheLimit` (100 000 by default), as the PostgreSQL adapter's do. They grew with every user
 * and conversation ever seen, for the life of the process. Reads after a start-over are the same.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { messageId } from '../../src/chat/message-id.js';

test('id caches start over at idCacheLimit; every read after it is the same', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-id-caches-'));
  const store = new SqliteStore(join(dir, 'db.sqlite'), { idCacheLimit: 10 });
  await store.init();
  try {
    const sender = randomUUID();
    const peers = Array.from({ length: 25 }, () => randomUUID());
    let t = Date.now();
    for (const peer of peers) {
      const [out] = await store.appendMessages([{ id: messageId(++t), tenantId: 'default', senderId: sender, to: { peerId: peer }, timestamp: t, content: `to ${peer}`, mentions: [], hashtags: [], links: [] }], { maxInboxSize: 100 });
      assert.equal(out?.status, 'stored');
    }
    const cached = store.cachedIds();
    assert.ok(cached.users <= 10 && cached.conversations <= 10 && cached.directPairs <= 10, JSON.stringify(cached));
    // Everything still reads right through the database.
    for (const peer of peers) {
      const h = await store.history('default', peer, { peerId: sender }, { limit: 5, groupHistory: 'since_join' });
      assert.deepEqual(h?.events.map((e) => ('content' in e ? e.content : '')), [`to ${peer}`]);
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
