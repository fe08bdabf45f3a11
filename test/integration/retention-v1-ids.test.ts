/**
 * Retention after an upgrade from storage v1. v1 servers before ac4f47e minted message ids with
 * randomUUID() (UUIDv4) and pruned by time; the v2 upgrade keeps those ids, and v2 retention
 * prunes by id (`id < the UUIDv7 floor of the cut`), which orders UUIDv7 ids by time but v4 ids by
 * chance: an old v1 message whose id starts high was never pruned, a young one whose id starts
 * 00 was pruned at once. Messages whose id is not a UUIDv7 are now pruned by their time (SQLite
 * schema 12, PostgreSQL version 10: a partial index on ts for them), UUIDv7 ones by their id.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Database } from '../../src/store/sqlite-driver.js';
import { SqliteStore, SQLITE_MIGRATIONS } from '../../src/store/sqlite-store.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { MIGRATIONS as PG_MIGRATIONS } from '../../src/store/pg-migrations.js';
import type { Store } from '../../src/store/store.js';
import { PG_URL } from '../helpers/harness.js';

const DAY = 86_400_000;
const NOW = Date.now();
const CUT = NOW - 30 * DAY;
const ANN = '11111111-1111-4111-8111-111111111111';
const BOB = '22222222-2222-4222-8222-222222222222';
/** A UUIDv7 of time `ms` (as v1 servers from ac4f47e on, and every v2 node, mint them). */
const uuid7 = (ms: number, tail: string): string => {
  const h = ms.toString(16).padStart(12, '0');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-7000-8000-${tail.padStart(12, '0')}`;
};

interface V1Row {
  id: string;
  ts: number;
  /** Kept by a prune at CUT. */
  kept: boolean;
}
/** v1 messages in v1 (insertion) order: v4 ids on both sides of the cut, in every id order, then v7 ones. */
const ROWS: V1Row[] = [
  { id: 'f1e2d3c4-0000-4000-8000-000000000001', ts: NOW - 60 * DAY, kept: false }, // old, sorts above every v7 id
  { id: 'c0ffee00-0000-4000-8000-000000000002', ts: NOW - 60 * DAY + 1000, kept: false },
  { id: '00000001-0000-4000-8000-000000000003', ts: NOW - 50 * DAY, kept: false }, // old, sorts below
  { id: '00abcdef-0000-4000-8000-000000000004', ts: NOW - DAY, kept: true }, // young, sorts below the cut's floor
  { id: '7fffffff-0000-4000-8000-000000000005', ts: NOW - 2 * DAY, kept: true }, // young, sorts above
  { id: uuid7(NOW - 40 * DAY, '6'), ts: NOW - 40 * DAY, kept: false },
  { id: uuid7(NOW - 3 * DAY, '7'), ts: NOW - 3 * DAY, kept: true },
];
const COLS = 'id, tenant_id, sender_id, recipient_id, conv, content, key_id, reply_to, attachments, mentions, hashtags, links, timestamp, client_msg_id, acked_at';
const values = (r: V1Row): unknown[] => [r.id, 'acme', ANN, BOB, `${ANN} ${BOB}`, `hello ${r.id}`, null, null, null, '[]', '[]', '[]', r.ts, null, r.ts + 10];
const expectedLeft = ROWS.filter((r) => r.kept).map((r) => r.id).sort();

/** v2 messages after the upgrade, and edits (UUIDv7, made yesterday) of an old and a young v1 message. */
async function afterUpgrade(store: Store): Promise<{ keptIds: string[] }> {
  const oldMsg = uuid7(CUT - DAY, 'a1');
  const newMsg = uuid7(NOW - DAY, 'a2');
  for (const [id, ts] of [[oldMsg, CUT - DAY], [newMsg, NOW - DAY]] as const) {
    const [out] = await store.appendMessages([{ id, tenantId: 'acme', senderId: ANN, to: { peerId: BOB }, timestamp: ts, content: `v2 ${id}`, mentions: [], hashtags: [], links: [] }], { maxInboxSize: 1000 });
    assert.equal(out?.status, 'stored');
  }
  let i = 0;
  for (const target of [ROWS[0]!, ROWS[3]!]) {
    const ts = NOW - DAY + ++i;
    const out = await store.editMessage(
      { tenantId: 'acme', actorId: ANN, eventId: uuid7(ts, `e${i}`), messageId: target.id, timestamp: ts, body: { content: `edited ${i}`, mentions: [], hashtags: [], links: [] } },
      { maxInboxSize: 1000, editWindowMs: 100 * DAY },
    );
    assert.equal(out.status, 'ok');
  }
  return { keptIds: [newMsg] };
}

async function check(store: Store, events: () => Promise<{ id: string; kind: number }[]>): Promise<void> {
  const { keptIds } = await afterUpgrade(store);
  // Old: three v1 messages with v4 ids, one with a v7 id, one v2 message, and the edit of an old v1 message.
  assert.equal(await store.pruneOlderThan(CUT), 6);
  const left = await events();
  assert.deepEqual(left.filter((e) => e.kind === 0).map((e) => e.id).sort(), [...expectedLeft, ...keptIds].sort(), 'exactly the messages younger than retention are left');
  assert.equal(left.filter((e) => e.kind === 2).length, 1, 'the edit of the young v1 message stays, the old one went with its message');
  const history = await store.history('acme', BOB, { peerId: ANN }, { limit: 100, groupHistory: 'since_join' });
  const young = history?.events.find((e) => e.id === ROWS[3]!.id);
  assert.ok(young?.kind === 'message' && young.content === 'edited 2', 'the young v1 message is kept, with its edit');
  const timeline = await store.timeline('acme', BOB, 0, 100);
  assert.ok(timeline.entries.every((e) => e.event.kind !== 'message' || e.event.timestamp >= CUT), 'no timeline entry of a pruned message is left');
  assert.equal(await store.pruneOlderThan(CUT), 0, 'nothing more is due');
}

describe('retention after a v1 upgrade: v1 messages with UUIDv4 ids are pruned by their time', () => {
  for (const slices of [undefined, { timeline: 1, events: 1, pass: 2 }]) {
    test(`SQLite${slices === undefined ? '' : ' (tiny slices and passes)'}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'rampart-v1ids-'));
      const file = join(dir, 'v1.db');
      try {
        const db = new Database(file);
        db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
        db.exec(SQLITE_MIGRATIONS[0]!);
        db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (1, ?)').run(NOW);
        const ins = db.prepare(`INSERT INTO messages (${COLS}) VALUES (${COLS.split(',').map(() => '?').join(', ')})`);
        for (const r of ROWS) ins.run(...values(r));
        db.close();
        const store = new SqliteStore(file, slices === undefined ? {} : { pruneSlice: slices });
        try {
          await store.init();
          await check(store, async () => {
            const read = new Database(file, { readonly: true });
            try {
              const rows = read.prepare('SELECT lower(hex(id)) AS id, kind FROM events').all() as { id: string; kind: number }[];
              return rows.map((r) => ({ id: `${r.id.slice(0, 8)}-${r.id.slice(8, 12)}-${r.id.slice(12, 16)}-${r.id.slice(16, 20)}-${r.id.slice(20)}`, kind: r.kind }));
            } finally {
              read.close();
            }
          });
        } finally {
          await store.close();
        }
        // The v1 messages' time index is usable as retention writes its condition.
        const read = new Database(file, { readonly: true });
        try {
          const plan = read
            .prepare("EXPLAIN QUERY PLAN SELECT conv, seq FROM events WHERE substr(hex(id), 13, 1) <> '7' AND ts < ? ORDER BY ts, rowid LIMIT ?")
            .all(CUT, 10) as { detail: string }[];
          assert.deepEqual(plan.map((p) => p.detail), ['SEARCH events USING INDEX events_legacy_ts (ts<?)']);
        } finally {
          read.close();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  test('PostgreSQL', async () => {
    const schema = `rampart_v1ids_${randomBytes(5).toString('hex')}`;
    const t = (x: string) => `"${schema}".${x}`;
    const admin = new pg.Pool({ connectionString: PG_URL, max: 1 });
    try {
      await admin.query(`CREATE SCHEMA "${schema}"`);
      await admin.query(`CREATE TABLE ${t('schema_version')} (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
      await admin.query(PG_MIGRATIONS[0]!(t));
      await admin.query(`INSERT INTO ${t('schema_version')} (version) VALUES (1)`);
      for (const r of ROWS) {
        await admin.query(`INSERT INTO ${t('messages')} (${COLS}) VALUES (${COLS.split(',').map((_, i) => `$${i + 1}`).join(', ')})`, values(r));
      }
      const store = new PostgresStore(PG_URL, { schema, pool: { max: 2 } });
      try {
        await store.init();
        await check(store, async () => (await admin.query<{ id: string; kind: number }>(`SELECT id::text AS id, kind FROM ${t('events')}`)).rows);
      } finally {
        await store.close();
      }
      // The v1 messages' time index is usable as the prune writes its condition (seq scans off:
      // on a table this small the planner would rightly prefer one).
      const client = await admin.connect();
      try {
        await client.query('SET enable_seqscan = off');
        const { rows } = await client.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN SELECT conv, seq FROM ${t('events')} WHERE substr(id::text, 15, 1) <> '7' AND ts < $1::bigint ORDER BY ts FOR UPDATE SKIP LOCKED`,
          [CUT],
        );
        assert.match(rows.map((r) => r['QUERY PLAN']).join('\n'), /Index Scan using events_legacy_ts/);
      } finally {
        await client.query('RESET enable_seqscan');
        client.release();
      }
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    }
  });
});
