/**
 * Retention on PostgreSQL: the prune statement and what runs it inside the transaction
 * postgres-store.ts opens. Events older than the
 * retention time go with their edits and timeline entries, taking only rows no writer holds
 * (postgres-store.ts module comment: lock order).
 */
import type pg from 'pg';
import { EVENT_EDIT } from './message-codec.js';
import type { TableName } from './pg-migrations.js';
import { NO_QUERY_TIMEOUT } from './pg-transaction.js';

// By the UUIDv7 id (time-ordered): no timestamp index needed ($1: the UUIDv7 floor of $2, the
// time retention keeps from). Except for messages upgraded from storage v1 with a random
// (version 4) id: those by their time (ts, through version 10's partial index events_legacy_ts),
// first — no event of a v2 node has such an id, and their edits do (UUIDv7), so a message is
// still locked before its edits. A UUIDv7 test on both sides: a young v1 message whose random
// id happens to sort below $1 is kept. The edits of a pruned message go with it (an edit
// carries the changed text), younger or not; the older ones are in d.
export function pruneSql(t: TableName): string {
  return `
      WITH kv1 AS MATERIALIZED (
        -- Only rows no writer holds: v1 messages (random ids) by time, then the rest in id order (a
        -- message before its edits, as an edit or delete takes them): the prune never waits on a
        -- writer, so the two cannot deadlock. A row skipped now (a delete in progress) goes with
        -- the next prune.
        SELECT conv, seq FROM ${t('events')} WHERE substr(id::text, 15, 1) <> '7' AND ts < $2::bigint ORDER BY ts FOR UPDATE SKIP LOCKED
      ), kv7 AS MATERIALIZED (
        SELECT conv, seq FROM ${t('events')} WHERE id < $1::uuid AND substr(id::text, 15, 1) = '7' ORDER BY id FOR UPDATE SKIP LOCKED
      ), k AS (
        SELECT conv, seq FROM kv1 UNION ALL SELECT conv, seq FROM kv7
      ), d AS (
        DELETE FROM ${t('events')} e USING k WHERE e.conv = k.conv AND e.seq = k.seq RETURNING e.conv, e.seq, e.id
      ), x AS (
        -- An edit's id is always a UUIDv7 (v1 had no edits): x.id >= $1 is "not expired itself".
        DELETE FROM ${t('events')} x USING d
        WHERE x.conv = d.conv AND x.reply_to = d.id AND x.kind = ${EVENT_EDIT} AND x.id >= $1::uuid
        RETURNING x.conv, x.seq
      ), tl AS (
        DELETE FROM ${t('timeline')} t USING (SELECT conv, seq FROM d UNION ALL SELECT conv, seq FROM x) k
        WHERE t.conv = k.conv AND t.seq = k.seq
      )
      SELECT ((SELECT count(*) FROM d) + (SELECT count(*) FROM x))::int AS n`;
}

/** The lower bound of UUIDv7 ids minted at `ms`: every id below it was minted earlier. */
export function uuidv7Floor(ms: number): string {
  const clamped = Math.max(0, Math.min(Math.floor(ms), 0xffffffffffff));
  const hex = clamped.toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-0000-0000-000000000000`;
}

/** Prune every event older than `olderThan` (ms) in the caller's transaction; the count deleted. */
export async function pruneEvents(client: pg.PoolClient, prune: pg.QueryConfig, olderThan: number): Promise<number> {
  // Background housekeeping over a possibly large backlog: exempt from statement_timeout.
  await client.query('SET LOCAL statement_timeout = 0');
  const { rows } = await client.query<{ n: number }>({ ...prune, values: [uuidv7Floor(olderThan), Math.floor(olderThan)], ...NO_QUERY_TIMEOUT });
  return rows[0]?.n ?? 0;
}
