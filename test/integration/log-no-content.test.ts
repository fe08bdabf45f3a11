/**
 * Storage errors reach the logs without what they carried: a stored row that fails to decode
 * (`JSON.parse` quotes its input in its message on Node 20 and later) must not put the row's
 * text, here a message's content, into the `timeline read failed` line (it did, through
 * `err.message`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database } from '../../src/store/sqlite-driver.js';
import { authedClient, closeAll, newUserId, startServer, waitFor } from '../helpers/harness.js';

const SECRET_TEXT = 'TOP SECRET merger plans';

test('a storage error logged by the server never carries a stored message content', { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-log-'));
  try {
    const bob = newUserId();
    const first = await startServer({}, { keepDir: dir });
    try {
      const alice = await authedClient(first.url);
      alice.send({ type: 'chat_message', recipientId: bob, content: SECRET_TEXT, clientMsgId: 'k1' });
      await alice.next((f) => f.type === 'message_sent');
      await closeAll(alice);
    } finally {
      await first.close();
    }
    // The row turns undecodable (a tombstone kind whose content is not the tombstone's JSON).
    const db = new Database(join(dir, 'test.db'));
    try {
      db.prepare('UPDATE events SET kind = 4 WHERE kind = 0').run();
    } finally {
      db.close();
    }
    const second = await startServer({}, { keepDir: dir });
    try {
      const b = await authedClient(second.url, bob);
      await waitFor(() => second.logs.some((l) => l.includes('timeline read failed')), 10_000, 'the replay failure to be logged');
      await closeAll(b);
      const leaking = second.logs.filter((l) => l.includes('TOP SECRET'));
      assert.deepEqual(leaking, [], 'a log line carries the message content');
    } finally {
      await second.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
