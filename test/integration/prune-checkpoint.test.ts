/**
 * SQLite: a prune checkpoints the WAL after deleting anything, also when the expired events fill
 * its last pass exactly (their count a multiple of pruneSlice.pass), where the next pass collects
 * nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database } from '../../src/store/sqlite-driver.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { messageId } from '../../src/chat/message-id.js';
import type { NewMessage } from '../../src/store/store.js';

async function walAfterPrune(extraPass: number): Promise<{ pruned: number; wal: number; pass: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'rampart-review-ckpt-'));
  const file = join(dir, 'db.sqlite');
  try {
    const t0 = Date.now() - 100_000;
    let store = new SqliteStore(file, {});
    await store.init();
    const [a, b] = [randomUUID(), randomUUID()];
    for (let i = 0; i < 3; i++) {
      const m: NewMessage = { id: messageId(t0 + i), tenantId: 'default', senderId: a, to: { peerId: b }, timestamp: t0 + i, content: `old ${i}`, mentions: [], hashtags: [], links: [] };
      await store.appendMessages([m], { maxInboxSize: 1000 });
    }
    await store.close();
    const db = new Database(file, { readonly: true, fileMustExist: true });
    const expired = (db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;
    db.close();
    const pass = expired + extraPass;
    store = new SqliteStore(file, { pruneSlice: { timeline: 1000, events: 1000, pass } });
    await store.init();
    try {
      // Something in the WAL for the checkpoint to move.
      await store.appendMessages([{ id: messageId(Date.now()), tenantId: 'default', senderId: a, to: { peerId: b }, timestamp: Date.now(), content: 'new', mentions: [], hashtags: [], links: [] }], { maxInboxSize: 1000 });
      const pruned = await store.pruneOlderThan(t0 + 1000);
      return { pruned, wal: statSync(`${file}-wal`).size, pass };
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('control — expired events fewer than a pass: the prune checkpoints (WAL truncated)', async () => {
  const r = await walAfterPrune(1);
  assert.ok(r.pruned >= 3);
  assert.equal(r.wal, 0, JSON.stringify(r));
});

test('expired events filling the last pass exactly: the prune still checkpoints (WAL truncated)', async () => {
  const r = await walAfterPrune(0);
  assert.ok(r.pruned >= 3);
  assert.equal(r.wal, 0, `pruned ${r.pruned} events with pass ${r.pass}: WAL left at ${r.wal} bytes (no checkpoint)`);
});
