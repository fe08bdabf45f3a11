/**
 * SQLite: pruned content leaves the database files (the WAL is checkpointed after a prune, as after
 * a delete_message), so no bytes of it stay on disk for a quiet server's next checkpoint.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { messageId } from '../../src/chat/message-id.js';
import type { NewMessage, StoredMessage } from '../../src/store/store.js';

const T = 'default';
const OPTS = { maxInboxSize: 1000 };

function message(from: string, to: NewMessage['to'], content: string, ts: number): NewMessage {
  return { id: messageId(ts), tenantId: T, senderId: from, to, timestamp: ts, content, mentions: [], hashtags: [], links: [] };
}

function files(file: string): Buffer {
  return Buffer.concat([file, `${file}-wal`, `${file}-journal`].filter(existsSync).map((f) => readFileSync(f)));
}

test('sqlite: delete_message leaves no bytes of the content in the files (control)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-review-files-'));
  const file = join(dir, 'db.sqlite');
  const store = new SqliteStore(file);
  await store.init();
  try {
    const [a, b] = [randomUUID(), randomUUID()];
    const [out] = await store.appendMessages([message(a, { peerId: b }, 'QQDELMARKERQQ', Date.now() - 1000)], OPTS);
    const m = (out as { message: StoredMessage }).message;
    const ts = Date.now();
    assert.equal((await store.deleteMessage({ tenantId: T, actorId: a, eventId: messageId(ts), messageId: m.id, timestamp: ts }, OPTS)).status, 'ok');
    assert.equal(files(file).indexOf('QQDELMARKERQQ'), -1);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sqlite: retention leaves no bytes of pruned content in the files', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-review-files-'));
  const file = join(dir, 'db.sqlite');
  const store = new SqliteStore(file);
  await store.init();
  try {
    const [a, b] = [randomUUID(), randomUUID()];
    const t0 = Date.now() - 100_000;
    await store.appendMessages([message(a, { peerId: b }, 'QQPRUNEMARKERQQ', t0)], OPTS);
    await store.appendMessages([message(a, { peerId: b }, 'kept', Date.now())], OPTS);
    assert.equal(await store.pruneOlderThan(t0 + 10), 1);
    const raw = files(file);
    assert.equal(raw.indexOf('QQPRUNEMARKERQQ'), -1, 'pruned content still in the database files (WAL not checkpointed after the prune)');
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
