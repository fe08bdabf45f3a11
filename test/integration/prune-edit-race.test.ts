/**
 * PostgreSQL: an edit whose transaction found its message while a prune deleting it committed
 * first is refused (forbidden), never stored for a message that is gone (before: an internal
 * TypeError, answered storage_unavailable). The message row is read locked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { messageId } from '../../src/chat/message-id.js';
import type { NewMessage, StoredMessage } from '../../src/store/store.js';
import { PG_URL } from '../helpers/harness.js';

const T = 'default';
const OPTS = { maxInboxSize: 1000 };

async function waitBlocked(admin: pg.Pool, like: string): Promise<void> {
  for (let i = 0; i < 20_000; i++) {
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`, [like]);
    if ((rows[0] as { n: number }).n > 0) return;
  }
  throw new Error(`never blocked: ${like}`);
}

test('postgres: an edit racing a prune stores nothing and is answered forbidden (not an internal TypeError)', async () => {
  const schema = `rampart_review_race_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: PG_URL, max: 3 });
  const store = new PostgresStore(PG_URL, { schema, pool: { max: 4 } });
  await store.init();
  const x = await admin.connect();
  try {
    const [a, b] = [randomUUID(), randomUUID()];
    const t0 = Date.now() - 50_000;
    const m: NewMessage = { id: messageId(t0), tenantId: T, senderId: a, to: { peerId: b }, timestamp: t0, content: 'PGRACEORIG', mentions: [], hashtags: [], links: [] };
    const [out] = await store.appendMessages([m], OPTS);
    const stored = (out as { message: StoredMessage }).message;
    // Hold the message's timeline rows: the prune deletes the event, then waits on them.
    await x.query('BEGIN');
    await x.query(`SELECT * FROM "${schema}".timeline FOR UPDATE`);
    const prune = store.pruneOlderThan(t0 + 10);
    await waitBlocked(admin, `%DELETE FROM "${schema}".events%`);
    const te = Date.now();
    const edit = store.editMessage(
      { tenantId: T, actorId: a, eventId: messageId(te), messageId: stored.id, timestamp: te, body: { content: 'PGRACEEDITED', mentions: [], hashtags: [], links: [] } },
      { ...OPTS, editWindowMs: 3_600_000 },
    );
    const editDone = edit.then((r) => r, (err: unknown) => err);
    await waitBlocked(admin, `%SET content%`).catch(() => {});
    await x.query('COMMIT');
    assert.equal(await prune, 1);
    const result = await editDone;
    const { rows } = await admin.query(`SELECT kind, content FROM "${schema}".events`);
    assert.deepEqual(rows, [], 'the pruned message left an edit behind');
    // The message no longer exists: protocol §6a answers `forbidden`, not a storage failure.
    assert.ok(!(result instanceof Error), `the edit rejected: ${String((result as Error).stack).split('\n').slice(0, 3).join(' | ')}`);
    assert.equal((result as { status: string }).status, 'forbidden');
  } finally {
    x.release();
    await store.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  }
});
