/**
 * An edit resent with its clientMsgId, whose first copy was sealed with a key since removed from
 * encryption.keys, is answered as a duplicate (its body left out), on both stores — not an
 * UnknownKeyError answered storage_unavailable and retried for ever.
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

test('sqlite: an edit resent with its key, its first copy sealed with a removed key, is answered as a duplicate', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-review-dupkeys-'));
  const file = join(dir, 'db.sqlite');
  let s = new SqliteStore(file, { cipher: new ContentCipher({ activeKeyId: 'k1', keys: { k1: randomBytes(32) } }) });
  await s.init();
  try {
    const [a, c] = [randomUUID(), randomUUID()];
    const ts = Date.now();
    const m: NewMessage = { id: messageId(ts), tenantId: T, senderId: a, to: { peerId: c }, timestamp: ts, content: 'orig', mentions: [], hashtags: [], links: [] };
    const [o] = await s.appendMessages([m], OPTS);
    const stored = (o as { message: StoredMessage }).message;
    const edit = (eventTs: number) => ({
      tenantId: T, actorId: a, eventId: messageId(eventTs), messageId: stored.id, timestamp: eventTs, clientMsgId: 'ed-1',
      body: { content: 'edited', mentions: [], hashtags: [], links: [] },
    });
    const first = await s.editMessage(edit(ts + 1), { ...OPTS, editWindowMs: 900_000 });
    assert.equal(first.status, 'ok');
    await s.close();
    s = new SqliteStore(file, { cipher: new ContentCipher({ activeKeyId: 'k2', keys: { k2: randomBytes(32) } }) });
    await s.init();
    let outcome: unknown;
    try {
      outcome = await s.editMessage(edit(ts + 2), { ...OPTS, editWindowMs: 900_000 });
    } catch (err) {
      outcome = err;
    }
    assert.equal((outcome as { status?: string }).status, 'duplicate', `the resent edit: ${outcome instanceof Error ? `${outcome.name}: ${outcome.message}` : JSON.stringify(outcome)}`);
  } finally {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

import pg from 'pg';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { PG_URL } from '../helpers/harness.js';

test('postgres: an edit resent with its key, its first copy sealed with a removed key, is answered as a duplicate', async () => {
  const schema = `rampart_review_d2_${randomBytes(5).toString('hex')}`;
  let s = new PostgresStore(PG_URL, { schema, pool: { max: 2 }, cipher: new ContentCipher({ activeKeyId: 'k1', keys: { k1: randomBytes(32) } }) });
  try {
    await s.init();
    const [a, c] = [randomUUID(), randomUUID()];
    const ts = Date.now();
    const m: NewMessage = { id: messageId(ts), tenantId: T, senderId: a, to: { peerId: c }, timestamp: ts, content: 'orig', mentions: [], hashtags: [], links: [] };
    const [o] = await s.appendMessages([m], OPTS);
    const stored = (o as { message: StoredMessage }).message;
    const edit = (eventTs: number) => ({
      tenantId: T, actorId: a, eventId: messageId(eventTs), messageId: stored.id, timestamp: eventTs, clientMsgId: 'ed-1',
      body: { content: 'edited', mentions: [], hashtags: [], links: [] },
    });
    assert.equal((await s.editMessage(edit(ts + 1), { ...OPTS, editWindowMs: 900_000 })).status, 'ok');
    await s.close();
    s = new PostgresStore(PG_URL, { schema, pool: { max: 2 }, cipher: new ContentCipher({ activeKeyId: 'k2', keys: { k2: randomBytes(32) } }) });
    await s.init();
    let outcome: unknown;
    try {
      outcome = await s.editMessage(edit(ts + 2), { ...OPTS, editWindowMs: 900_000 });
    } catch (err) {
      outcome = err;
    }
    assert.equal((outcome as { status?: string }).status, 'duplicate', `the resent edit: ${outcome instanceof Error ? `${outcome.name}: ${outcome.message}` : JSON.stringify(outcome)}`);
  } finally {
    await s.close();
    const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  }
});
