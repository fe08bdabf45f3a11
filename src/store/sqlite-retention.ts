/**
 * Retention for the SQLite store: the statements that delete expired events with their timeline
 * entries and younger edits, and the pass that runs them in short slices (pruneOlderThan), a turn
 * of the event loop apart. The store lends it its write transaction (RetentionContext).
 */
import { EVENT_EDIT } from './message-codec.js';
import type { SqliteDatabase } from './sqlite-statements.js';

/**
 * An events row whose id is not a UUIDv7: a message upgraded from storage v1 with a random
 * (version 4) id. Written exactly as schema 12's partial index events_legacy_ts, so the planner
 * can use it (a partial index serves only queries whose WHERE holds its condition as written).
 */
const LEGACY_ID = "substr(hex(id), 13, 1) <> '7'";
/** Its complement: a UUIDv7 id (which `id < bound` prunes by its time). */
const V7_ID = "substr(hex(id), 13, 1) = '7'";

/** Retention's statements (they use temp.prune_keys, which init() creates first). */
export function prepareRetention(db: SqliteDatabase) {
  return {
    /** The entry `offset` entries after (user, pos) in key order (a prune slice's end). */
    timelineSliceEnd: db.prepare<[number, number, number], { user: number; pos: number }>(
      'SELECT user, pos FROM timeline WHERE (user, pos) > (?, ?) ORDER BY user, pos LIMIT 1 OFFSET ?',
    ),
    clearPruneKeys: db.prepare('DELETE FROM temp.prune_keys'),
    /**
     * Expired events, in two kinds (pruneOlderThan takes the first, then the second): messages
     * upgraded from storage v1 with a random id, by their time (oldest first, through schema 12's
     * partial index); the others, all UUIDv7, by their id (`id < bound`: time-ordered). A v1 id
     * that sorts below the bound by chance is not the second kind: it goes only once it is old.
     */
    collectLegacyPruneKeys: db.prepare<[number, number]>(
      `INSERT INTO temp.prune_keys (conv, seq) SELECT conv, seq FROM events WHERE ${LEGACY_ID} AND ts < ? ORDER BY ts, rowid LIMIT ?`,
    ),
    collectPruneKeys: db.prepare<[Buffer, number]>(
      `INSERT INTO temp.prune_keys (conv, seq) SELECT conv, seq FROM events WHERE id < ? AND ${V7_ID} ORDER BY id LIMIT ?`,
    ),
    /**
     * The edits of the collected messages that are younger than the bound: an edit carries the
     * text its message was changed to, so it goes with the message (not an hour or an edit window
     * later), and with its timeline entries.
     */
    collectEditKeys: db.prepare<[Buffer]>(
      `INSERT OR IGNORE INTO temp.prune_keys (conv, seq)
       SELECT x.conv, x.seq FROM temp.prune_keys k
       JOIN events m ON m.conv = k.conv AND m.seq = k.seq
       JOIN events x ON x.conv = m.conv AND x.reply_to = m.id AND x.kind = ${EVENT_EDIT}
       WHERE x.id >= ?`,
    ),
    pruneEditEvents: db.prepare<[Buffer]>(
      `DELETE FROM events WHERE (conv, seq) IN (SELECT conv, seq FROM temp.prune_keys) AND kind = ${EVENT_EDIT} AND id >= ?`,
    ),
    pruneTimelineSlice: db.prepare<[number, number, number, number]>(
      `DELETE FROM timeline WHERE (user, pos) > (?, ?) AND (user, pos) <= (?, ?)
         AND EXISTS (SELECT 1 FROM temp.prune_keys k WHERE k.conv = timeline.conv AND k.seq = timeline.seq)`,
    ),
    pruneTimelineFrom: db.prepare<[number, number]>(
      `DELETE FROM timeline WHERE (user, pos) > (?, ?)
         AND EXISTS (SELECT 1 FROM temp.prune_keys k WHERE k.conv = timeline.conv AND k.seq = timeline.seq)`,
    ),
    pruneRecentTimeline: db.prepare(
      `DELETE FROM timeline_recent
       WHERE EXISTS (SELECT 1 FROM temp.prune_keys k WHERE k.conv = timeline_recent.conv AND k.seq = timeline_recent.seq)`,
    ),
    pruneLegacyEventsSlice: db.prepare<[number, number]>(
      `DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE ${LEGACY_ID} AND ts < ? ORDER BY ts, rowid LIMIT ?)`,
    ),
    pruneEventsSlice: db.prepare<[Buffer, number]>(`DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE id < ? AND ${V7_ID} ORDER BY id LIMIT ?)`),
    /**
     * The younger edits of the messages the next events slice deletes (same bound, same order and
     * limit), in the same transaction: a message never goes without its edits, even when the
     * prune stops between slices (a shutdown) or an edit was committed while the pass ran.
     */
    pruneSliceEdits: db.prepare<[Buffer, Buffer, number]>(
      `DELETE FROM events WHERE kind = ${EVENT_EDIT} AND id >= ?
         AND (conv, reply_to) IN (SELECT conv, id FROM events WHERE id < ? AND ${V7_ID} ORDER BY id LIMIT ?)`,
    ),
    /** As pruneSliceEdits, for the next slice of v1 messages (edits are UUIDv7: `id >= bound` is young). */
    pruneLegacySliceEdits: db.prepare<[Buffer, number, number]>(
      `DELETE FROM events WHERE kind = ${EVENT_EDIT} AND id >= ?
         AND (conv, reply_to) IN (SELECT conv, id FROM events WHERE ${LEGACY_ID} AND ts < ? ORDER BY ts, rowid LIMIT ?)`,
    ),
  };
}

export type RetentionStatements = ReturnType<typeof prepareRetention>;

/**
 * One kind of expired events for pruneOlderThan: `collect` puts the keys of up to `limit` of the
 * oldest into temp.prune_keys; `slice` deletes up to `limit` of the oldest (the same ones, in the
 * same order) with their younger edits: [events, edits] deleted.
 */
interface PruneKind {
  collect(s: RetentionStatements, limit: number): number;
  slice(s: RetentionStatements, limit: number): readonly [number, number];
}

/** Retention slices (SqliteStoreOptions.pruneSlice). */
export interface PruneSlice {
  timeline: number;
  events: number;
  pass: number;
}

const PRUNE_SLICE: PruneSlice = { timeline: 10_000, events: 5_000, pass: 50_000 };

/** The slices to prune in: the defaults, overridden by `tuning`'s (each a positive integer). */
export function pruneSliceOf(tuning: Partial<PruneSlice> | undefined): PruneSlice {
  const slice = { ...PRUNE_SLICE, ...tuning };
  for (const [key, value] of Object.entries(slice)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`pruneSlice.${key} must be a positive integer`);
  }
  return slice;
}

/** Lets the event loop run (sockets, timers) between two slices of a long job. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** What a prune pass needs of the store. */
export interface RetentionContext {
  /** The statements of the connection the pass started on; undefined once it was closed (or reopened). */
  statements(): RetentionStatements | undefined;
  /** The store's write transaction (SqliteStore #write). */
  write<R>(fn: () => R, keepCounters?: boolean): R;
  /** Moves the rewritten pages out of the WAL (PRAGMA wal_checkpoint(TRUNCATE)). */
  checkpoint(): void;
  readonly slice: PruneSlice;
}

/**
 * Retention, in slices: each its own short transaction, with a turn of the event loop between
 * them. SQLite is synchronous, and one transaction over a large backlog (the first prune after
 * retention is enabled, or after downtime) would stall every session of the node for as long as
 * it ran. A pass takes the keys of up to `pruneSlice.pass` of the oldest expired events into a
 * temp table, deletes their timeline entries (`pruneSlice.timeline` entries examined per slice,
 * in key order), then the events (`pruneSlice.events` per slice, oldest first). A reader between
 * two slices sees an event without some of its timeline entries, never the reverse.
 * Messages upgraded from storage v1 with a random (UUIDv4) id go first, by their time (ts); then
 * every other event, all UUIDv7, by its id (collectLegacyPruneKeys, collectPruneKeys).
 */
export async function pruneOlderThan(ctx: RetentionContext, bound: Buffer, oldTs: number): Promise<number> {
  const legacy: PruneKind = {
    collect: (s, limit) => s.collectLegacyPruneKeys.run(oldTs, limit).changes,
    slice: (s, limit) => {
      const younger = s.pruneLegacySliceEdits.run(bound, oldTs, limit).changes;
      return [s.pruneLegacyEventsSlice.run(oldTs, limit).changes, younger];
    },
  };
  const byId: PruneKind = {
    collect: (s, limit) => s.collectPruneKeys.run(bound, limit).changes,
    slice: (s, limit) => {
      const younger = s.pruneSliceEdits.run(bound, bound, limit).changes;
      return [s.pruneEventsSlice.run(bound, limit).changes, younger];
    },
  };
  let pruned = 0;
  for (const kind of [legacy, byId]) {
    const [n, stopped] = await pruneKind(ctx, kind, bound);
    pruned += n;
    if (stopped) return pruned;
  }
  // As after a delete_message: the pruned rows' bytes leave the WAL now, not at some later checkpoint.
  if (pruned > 0 && ctx.statements() !== undefined) ctx.checkpoint();
  return pruned;
}

/** pruneOlderThan's passes over one kind of expired events: [events deleted, stopped (store closed)]. */
async function pruneKind(ctx: RetentionContext, kind: PruneKind, bound: Buffer): Promise<[number, boolean]> {
  const slice = ctx.slice;
  const statements = ctx.statements;
  let pruned = 0;
  for (;;) {
    const s = statements();
    if (s === undefined) return [pruned, true];
    const keys = ctx.write(() => {
      s.clearPruneKeys.run();
      const expired = kind.collect(s, slice.pass);
      if (expired > 0) s.collectEditKeys.run(bound);
      return expired;
    }, true);
    if (keys === 0) break; // nothing more expired (a pass may have ended exactly on the last ones: checkpoint below)
    ctx.write(() => s.pruneRecentTimeline.run()); // a few thousand entries at most
    let after: { user: number; pos: number } | undefined = { user: -1, pos: -1 };
    while (after !== undefined) {
      await nextTurn();
      const t = statements();
      if (t === undefined) return [pruned, true];
      const from = after;
      after = ctx.write(() => {
        // The last entry of this slice, or none when fewer than a slice remain (then: to the end).
        const end = t.timelineSliceEnd.get(from.user, from.pos, slice.timeline - 1);
        if (end === undefined) t.pruneTimelineFrom.run(from.user, from.pos);
        else t.pruneTimelineSlice.run(from.user, from.pos, end.user, end.pos);
        return end;
      });
    }
    // The pass's events are the oldest expired ones (of this kind): delete that many, oldest first.
    let left = keys;
    while (left > 0) {
      await nextTurn();
      const t = statements();
      if (t === undefined) return [pruned, true];
      const [n, edits] = ctx.write(() => kind.slice(t, Math.min(left, slice.events)));
      pruned += n + edits;
      left = n === 0 ? 0 : left - n;
    }
    const u = statements();
    if (u === undefined) return [pruned, true];
    pruned += ctx.write(() => u.pruneEditEvents.run(bound).changes);
    if (keys < slice.pass) break;
  }
  return [pruned, false];
}
