/**
 * PostgreSQL: retention prunes racing edits and deletes.
 * - An edit whose transaction found its message while a prune deleting it committed first is
 *   refused (forbidden), never stored for a message that is gone (before: an internal TypeError,
 *   answered storage_unavailable). The message row is read locked.
 * - A prune beside a delete of an edited message does not deadlock: before, the prune's DELETE
 *   locked the edit, then the message, and the delete the message, then its edits (40P01).
 * - A delete of an expiring message waiting on a prune holds no other lock: before, it held the
 *   conversation's and its members' user locks meanwhile, and every message batch of those users
 *   (one transaction in flight per node) waited for the whole prune.
 * - Taking the message's row first applies to messages only: a delete naming an edit's id (every
 *   member is sent it) locked that edit before the conversation, and a delete of the edited
 *   message, which takes its edits after the conversation, deadlocked with it; and such a delete is
 *   refused before any lock (it took the conversation's and its members' locks, then waited on the
 *   edit's row while a prune held it, and their messages waited with it).
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

/** Until `n` sessions wait on a lock running a statement LIKE `like`. */
async function waitBlocked(admin: pg.Pool, like: string, n = 1): Promise<void> {
  for (let i = 0; i < 20_000; i++) {
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`, [like]);
    if ((rows[0] as { n: number }).n >= n) return;
  }
  throw new Error(`never blocked: ${like}`);
}

interface Race {
  schema: string;
  admin: pg.Pool;
  store: PostgresStore;
  /** A connection of its own, to hold locks; whatever it still holds is rolled back at the end. */
  x: pg.PoolClient;
}

/** A store in a schema of its own, an admin pool and one connection to hold locks with. */
async function withRace(name: string, fn: (r: Race) => Promise<void>): Promise<void> {
  const schema = `rampart_${name}_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Pool({ connectionString: PG_URL, max: 3 });
  const store = new PostgresStore(PG_URL, { schema, pool: { max: 5 } });
  await store.init();
  const x = await admin.connect();
  try {
    await fn({ schema, admin, store, x });
  } finally {
    await x.query('ROLLBACK').catch(() => {});
    x.release();
    await store.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  }
}

test('postgres: an edit racing a prune stores nothing and is answered forbidden (not an internal TypeError)', async () => {
  await withRace('edit_race', async ({ schema, admin, store, x }) => {
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
    // The edit waits on the message's row (its first lock), which the prune holds.
    await waitBlocked(admin, `%SELECT 1 FROM "${schema}".events WHERE id%`);
    await x.query('COMMIT');
    assert.equal(await prune, 1);
    const result = await editDone;
    const { rows } = await admin.query(`SELECT kind, content FROM "${schema}".events`);
    assert.deepEqual(rows, [], 'the pruned message left an edit behind');
    // The message no longer exists: protocol §6a answers `forbidden`, not a storage failure.
    assert.ok(!(result instanceof Error), `the edit rejected: ${String((result as Error).stack).split('\n').slice(0, 3).join(' | ')}`);
    assert.equal((result as { status: string }).status, 'forbidden');
  });
});

test('postgres: a prune running beside a delete of an edited message does not deadlock either', async () => {
  await withRace('prune_delete', async ({ schema, admin, store, x }) => {
    const [a, b] = [randomUUID(), randomUUID()];
    const t0 = Date.now() - 50_000;
    const m: NewMessage = { id: messageId(t0), tenantId: T, senderId: a, to: { peerId: b }, timestamp: t0, content: 'orig', mentions: [], hashtags: [], links: [] };
    const [out] = await store.appendMessages([m], OPTS);
    const stored = (out as { message: StoredMessage }).message;
    // An edit a second later, itself older than the cut-off.
    const te = t0 + 1000;
    const edited = await store.editMessage(
      { tenantId: T, actorId: a, eventId: messageId(te), messageId: stored.id, timestamp: te, body: { content: 'edited', mentions: [], hashtags: [], links: [] } },
      { ...OPTS, editWindowMs: 3_600_000 },
    );
    assert.equal(edited.status, 'ok');
    const { rows: cs } = await admin.query<{ conv: number; last_seq: string }>(`SELECT id AS conv, last_seq FROM "${schema}".conversations`);
    const conv = cs[0]!.conv;
    const nextSeq = Number(cs[0]!.last_seq) + 1;
    const { rows: us } = await admin.query<{ id: number }>(`SELECT id FROM "${schema}".users WHERE user_id = $1`, [a]);
    // Hold the (conv, seq) the delete event will take: the delete blocks there holding the message row lock.
    await x.query('BEGIN');
    await x.query(
      `INSERT INTO "${schema}".events (conv, seq, id, kind, sender, content, mentions, hashtags, links, ts) VALUES ($1, $2, $3, 3, $4, '', '[]', '[]', '[]', $5)`,
      [conv, nextSeq, messageId(Date.now()), us[0]!.id, Date.now()],
    );
    const td = Date.now();
    const del = store.deleteMessage({ tenantId: T, actorId: a, eventId: messageId(td), messageId: stored.id, timestamp: td }, OPTS);
    const delDone = del.then((r) => r, (err: unknown) => err);
    await waitBlocked(admin, `%INSERT INTO "${schema}".events%`);
    // The delete holds the message's row: the prune leaves it (and so its edits' fate) to the
    // delete, takes the old edit, and does not wait.
    const p = await store.pruneOlderThan(t0 + 5000).then((r) => r, (err: unknown) => err);
    assert.equal(p, 1, `prune: ${String(p)}`);
    await x.query('ROLLBACK');
    const d = await delDone;
    assert.ok(!(d instanceof Error), `delete_message failed: ${String(d)}`);
    assert.equal((d as { status: string }).status, 'ok');
    // The next prune takes the (now tombstoned) message.
    assert.equal(await store.pruneOlderThan(t0 + 5000), 1);
    const { rows: left } = await admin.query(`SELECT count(*)::int AS n FROM "${schema}".events WHERE id < $1`, [messageId(t0 + 5000)]);
    assert.equal((left[0] as { n: number }).n, 0);
  });
});

test('postgres: a delete of an expiring message during a prune does not hold up other messages of its members', async () => {
  await withRace('prune_stall', async ({ schema, admin, store, x }) => {
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    const t0 = Date.now() - 50_000;
    const m: NewMessage = { id: messageId(t0), tenantId: T, senderId: a, to: { peerId: b }, timestamp: t0, content: 'old', mentions: [], hashtags: [], links: [] };
    const stored = ((await store.appendMessages([m], OPTS))[0] as { message: StoredMessage }).message;
    await x.query('BEGIN');
    await x.query(`SELECT * FROM "${schema}".timeline FOR UPDATE`);
    const prune = store.pruneOlderThan(t0 + 10).then((r) => r, (err: unknown) => err);
    await waitBlocked(admin, `%DELETE FROM "${schema}".events%`);
    const td = Date.now();
    const del = store.deleteMessage({ tenantId: T, actorId: a, eventId: messageId(td), messageId: stored.id, timestamp: td }, OPTS).then((r) => r, (err: unknown) => err);
    // The delete waits on the message's row (its first lock), which the prune holds.
    await waitBlocked(admin, `%SELECT 1 FROM "${schema}".events WHERE id%`);
    // An unrelated message of the same sender, to someone else.
    const tn = Date.now();
    const next: NewMessage = { id: messageId(tn), tenantId: T, senderId: a, to: { peerId: c }, timestamp: tn, content: 'new', mentions: [], hashtags: [], links: [] };
    const send = store.appendMessages([next], OPTS).then((r) => r, (err: unknown) => err);
    const timer = new Promise<'waiting'>((resolve) => setTimeout(() => resolve('waiting'), 1500).unref());
    const first = await Promise.race([send, timer]);
    await x.query('COMMIT');
    await Promise.all([prune, del, send]);
    assert.notEqual(first, 'waiting', "a's unrelated message waited on the prune (behind the delete's user lock)");
  });
});

test('postgres: a delete naming an edit event id does not deadlock a delete of the edited message', async () => {
  await withRace('edit_id_delete', async ({ schema, admin, store, x }) => {
    const [a, b] = [randomUUID(), randomUUID()];
    const t0 = Date.now() - 5000;
    const m: NewMessage = { id: messageId(t0), tenantId: T, senderId: a, to: { peerId: b }, timestamp: t0, content: 'orig', mentions: [], hashtags: [], links: [] };
    const stored = ((await store.appendMessages([m], OPTS))[0] as { message: StoredMessage }).message;
    const te = t0 + 1000;
    const editId = messageId(te);
    const edited = await store.editMessage(
      { tenantId: T, actorId: a, eventId: editId, messageId: stored.id, timestamp: te, body: { content: 'edited', mentions: [], hashtags: [], links: [] } },
      { ...OPTS, editWindowMs: 3_600_000 },
    );
    assert.equal(edited.status, 'ok');
    const { rows: cs } = await admin.query<{ conv: number }>(`SELECT id AS conv FROM "${schema}".conversations`);
    // Hold the conversation briefly so both deletes line up behind it (a busy conversation).
    await x.query('BEGIN');
    await x.query(`SELECT 1 FROM "${schema}".conversations WHERE id = $1 FOR UPDATE`, [cs[0]!.conv]);
    const t1 = Date.now();
    const delMessage = store.deleteMessage({ tenantId: T, actorId: a, eventId: messageId(t1), messageId: stored.id, timestamp: t1 }, OPTS).then((r) => r, (e: unknown) => e);
    await waitBlocked(admin, `%FROM "${schema}".conversations WHERE id = $1 FOR UPDATE%`, 1);
    const t2 = Date.now();
    // b (a member) names the edit event's id, as received in the edit's frame: refused at once,
    // while the conversation is still held, locking nothing.
    const re = await store.deleteMessage({ tenantId: T, actorId: b, eventId: messageId(t2), messageId: editId, timestamp: t2 }, OPTS).then((r) => r, (e: unknown) => e);
    await x.query('COMMIT');
    const rm = await delMessage;
    assert.ok(!(rm instanceof Error), `delete of the message failed: ${String(rm)}`);
    assert.ok(!(re instanceof Error), `delete naming the edit failed: ${String(re)}`);
    assert.equal((rm as { status: string }).status, 'ok');
    assert.equal((re as { status: string }).status, 'forbidden');
  });
});

test('postgres: a delete naming an edit id during a prune does not hold up other messages of its members', async () => {
  await withRace('edit_id_stall', async ({ schema, admin, store, x }) => {
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    const t0 = Date.now() - 50_000;
    const m: NewMessage = { id: messageId(t0), tenantId: T, senderId: a, to: { peerId: b }, timestamp: t0, content: 'old', mentions: [], hashtags: [], links: [] };
    const stored = ((await store.appendMessages([m], OPTS))[0] as { message: StoredMessage }).message;
    const editId = messageId(t0 + 1);
    const edited = await store.editMessage(
      { tenantId: T, actorId: a, eventId: editId, messageId: stored.id, timestamp: t0 + 1, body: { content: 'old2', mentions: [], hashtags: [], links: [] } },
      { ...OPTS, editWindowMs: 3_600_000 },
    );
    assert.equal(edited.status, 'ok');
    await x.query('BEGIN');
    await x.query(`SELECT * FROM "${schema}".timeline FOR UPDATE`);
    const prune = store.pruneOlderThan(t0 + 10).then((r) => r, (err: unknown) => err);
    await waitBlocked(admin, `%DELETE FROM "${schema}".events%`);
    // b (a member, who was sent the edit event) deletes by the edit's id.
    const td = Date.now();
    const del = store.deleteMessage({ tenantId: T, actorId: b, eventId: messageId(td), messageId: editId, timestamp: td }, OPTS).then((r) => r, (err: unknown) => err);
    // Refused at once, holding nothing; before, it took the conversation's and members' locks, then waited on the edit's row.
    let settled = false;
    void del.then(() => (settled = true));
    for (let i = 0; i < 20_000 && !settled; i++) {
      const { rows } = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE OF e%'`);
      if ((rows[0] as { n: number }).n > 0) break;
    }
    // An unrelated message of b, to someone else.
    const tn = Date.now();
    const next: NewMessage = { id: messageId(tn), tenantId: T, senderId: b, to: { peerId: c }, timestamp: tn, content: 'new', mentions: [], hashtags: [], links: [] };
    const send = store.appendMessages([next], OPTS).then((r) => r, (err: unknown) => err);
    const timer = new Promise<'waiting'>((resolve) => setTimeout(() => resolve('waiting'), 1500).unref());
    const first = await Promise.race([send, timer]);
    await x.query('COMMIT');
    await Promise.all([prune, del, send]);
    assert.notEqual(first, 'waiting', "b's unrelated message waited on the prune (behind the refused delete's user locks)");
  });
});
