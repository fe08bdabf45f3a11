/**
 * A create's key found again when its creation event was sealed with a key since removed: an edit
 * under that key is refused (another operation's key), not failed for ever with UnknownKeyError.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { ContentCipher } from '../../src/store/content-cipher.js';
import { messageId } from '../../src/chat/message-id.js';
import type { NewMessage, StoredMessage } from '../../src/store/store.js';

const T = 'default';
const OPTS = { maxInboxSize: 1000 };

test('sqlite: an edit sent with the key of its sender’s create (sealed with a removed key) is answered, not thrown (storage_unavailable for ever)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-fin-dupm-'));
  const file = join(dir, 'db.sqlite');
  let s = new SqliteStore(file, { cipher: new ContentCipher({ activeKeyId: 'k1', keys: { k1: randomBytes(32) } }) });
  await s.init();
  try {
    const [a, c] = [randomUUID(), randomUUID()];
    const ts = Date.now();
    const m: NewMessage = { id: messageId(ts), tenantId: T, senderId: a, to: { peerId: c }, timestamp: ts, content: 'orig', mentions: [], hashtags: [], links: [] };
    const [o] = await s.appendMessages([m], OPTS);
    const stored = (o as { message: StoredMessage }).message;
    const created = await s.createGroup(
      { tenantId: T, actorId: a, eventId: messageId(ts + 1), timestamp: ts + 1, conversationId: randomUUID(), name: 'team', memberIds: [c], clientMsgId: 'k-1' },
      { maxGroupMembers: 100, maxGroupsPerUser: 100 } as never,
    );
    assert.equal(created.status, 'ok');
    await s.close();
    s = new SqliteStore(file, { cipher: new ContentCipher({ activeKeyId: 'k2', keys: { k2: randomBytes(32) } }) });
    await s.init();
    let outcome: unknown;
    try {
      outcome = await s.editMessage(
        { tenantId: T, actorId: a, eventId: messageId(ts + 2), messageId: stored.id, timestamp: ts + 2, clientMsgId: 'k-1', body: { content: 'edited', mentions: [], hashtags: [], links: [] } },
        { ...OPTS, editWindowMs: 900_000 },
      );
    } catch (err) {
      outcome = err;
    }
    assert.ok(!(outcome instanceof Error), `the keyed edit threw: ${outcome instanceof Error ? `${outcome.name}: ${outcome.message}` : ''}`);
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
