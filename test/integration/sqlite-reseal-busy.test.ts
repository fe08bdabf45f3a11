/**
 * The SQLite start-up re-seal of group names (a key rotation) writes in BEGIN IMMEDIATE
 * transactions, as every write of the store: another process committing to the file meanwhile is
 * waited for instead of failing init() with SQLITE_BUSY_SNAPSHOT (a deferred transaction that read
 * first could not upgrade to a writer).
 *
 * The other writer is simulated deterministically: a cipher whose first seal() (called by the
 * re-seal pass between its SELECT and its first UPDATE) commits a write on a second connection,
 * as another process would; under BEGIN IMMEDIATE that write waits or fails on its own side (the
 * hook ignores its failure) and init succeeds.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContentCipher } from '../../src/store/content-cipher.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { Database } from '../../src/store/sqlite-driver.js';
import { messageId } from '../../src/chat/message-id.js';

const dir = mkdtempSync(join(tmpdir(), 'rampart-reseal-busy-'));
const file = join(dir, 'db.sqlite');
after(() => rmSync(dir, { recursive: true, force: true }));

const K1 = randomBytes(32);
const K2 = randomBytes(32);

/** k2 active; its first seal() lets "another process" commit a write first. */
class InterleavingCipher extends ContentCipher {
  #done = false;
  override seal(plaintext: string, context: string): string {
    if (!this.#done) {
      this.#done = true;
      const other = new Database(file);
      try {
        other.pragma('busy_timeout = 0');
        other.exec('CREATE TABLE IF NOT EXISTS other_writer (x INTEGER)');
        other.prepare('INSERT INTO other_writer (x) VALUES (1)').run();
      } catch {
        // locked out by an IMMEDIATE transaction: the other process would simply wait
      } finally {
        other.close();
      }
    }
    return super.seal(plaintext, context);
  }
}

test('a write committed by another connection during the start-up re-seal does not stop the store from opening', async () => {
  let t = Date.now();
  const alice = randomUUID();
  const bob = randomUUID();
  const gid = randomUUID();
  const s1 = new SqliteStore(file, { cipher: new ContentCipher({ activeKeyId: 'k1', keys: { k1: K1 } }) });
  await s1.init();
  const created = await s1.createGroup(
    { tenantId: 'default', actorId: alice, eventId: messageId(++t), timestamp: t, conversationId: gid, name: 'Falcon', memberIds: [bob] },
    { maxGroupMembers: 10, maxGroupsPerUser: 10 },
  );
  assert.equal(created.status, 'ok');
  await s1.close();

  const s2 = new SqliteStore(file, { cipher: new InterleavingCipher({ activeKeyId: 'k2', keys: { k1: K1, k2: K2 } }) });
  try {
    await assert.doesNotReject(s2.init(), 'init must not fail because another connection wrote meanwhile');
    const list = await s2.listConversations('default', bob, { limit: 10 });
    assert.equal(list.conversations[0]?.name, 'Falcon');
  } finally {
    await s2.close().catch(() => {});
  }
});
