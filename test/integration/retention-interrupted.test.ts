/**
 * SQLite: a prune cut short by close() (shutdown does not wait for it) between slices never leaves
 * a pruned message's edit behind: each slice deletes its messages and their younger edits together.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database } from '../../src/store/sqlite-driver.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { messageId } from '../../src/chat/message-id.js';
import type { NewMessage, StoredMessage } from '../../src/store/store.js';

const T = 'default';
const OPTS = { maxInboxSize: 1000 };

function message(from: string, to: NewMessage['to'], content: string, ts: number): NewMessage {
  return { id: messageId(ts), tenantId: T, senderId: from, to, timestamp: ts, content, mentions: [], hashtags: [], links: [] };
}

test('sqlite: a prune cut short by close() does not leave a pruned message\'s edit behind for good', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-review-int-'));
  const file = join(dir, 'db.sqlite');
  const opts = { pruneSlice: { timeline: 1000, events: 1, pass: 10 } };
  let store = new SqliteStore(file, opts);
  await store.init();
  try {
    const [a, b] = [randomUUID(), randomUUID()];
    const t0 = Date.now() - 100_000;
    const [o1] = await store.appendMessages([message(a, { peerId: b }, 'INTORIG', t0)], OPTS);
    const m = (o1 as { message: StoredMessage }).message;
    await store.appendMessages([message(a, { peerId: b }, 'other old', t0 + 1)], OPTS);
    const te = t0 + 60_000; // edited a minute later, within the window
    const edit = await store.editMessage(
      { tenantId: T, actorId: a, eventId: messageId(te), messageId: m.id, timestamp: te, body: { content: 'INTEDITED', mentions: [], hashtags: [], links: [] } },
      { ...OPTS, editWindowMs: 900_000 },
    );
    assert.equal(edit.status, 'ok');
    const bound = t0 + 10;
    const p = store.pruneOlderThan(bound);
    const first = store;
    // Shut down while the prune is between its event slices.
    setImmediate(() => setImmediate(() => void first.close()));
    await p;
    store = new SqliteStore(file, opts);
    await store.init();
    // The next hourly run, same bound: everything old goes, and the message's edit with it.
    await store.pruneOlderThan(bound);
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const rows = db.prepare('SELECT kind, content FROM events').all();
      assert.deepEqual(rows, [], 'rows left after the retention caught up');
    } finally {
      db.close();
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
