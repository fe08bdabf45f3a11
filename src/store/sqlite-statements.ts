/**
 * The SQLite store's prepared-statement catalogues: the message path's (users, conversations,
 * members, events, timeline, devices) and the features' (receipts, edits and deletes, presence).
 * Each is prepared once per connection; the SQL text lives here, the logic in
 * sqlite-store.ts and the modules beside it (append, group and message changes, timeline, ids; the
 * prune statements are sqlite-retention.ts's own).
 */
import type BetterSqlite3 from 'better-sqlite3';
import { SqliteRowBatches } from './sqlite-row-batches.js';
import { EVENT_DELETE, EVENT_EDIT, EVENT_MESSAGE, EVENT_TOMBSTONE, KIND_GROUP } from './message-codec.js';
import type { MembershipPeriod } from './former-member-view.js';
import { EVENT_COLUMNS, type ConvRow, type ConvState, type ListRow, type MemberRow, type RawEventRow, type TimelineRow } from './sqlite-rows.js';

/**
 * A prepared statement, as the catalogues below hand it out. better-sqlite3's own statement type
 * lives in a namespace its package does not export, so a declaration file cannot name it; these
 * two types say the same of the parts the store uses.
 */
export interface SqliteStatement<P extends unknown[], R> {
  run(...params: P): BetterSqlite3.RunResult;
  get(...params: P): R | undefined;
  all(...params: P): R[];
  pluck(toggleState?: boolean): this;
}

/** A better-sqlite3 database whose `prepare` returns SqliteStatement (the same object). */
export type SqliteDatabase = {
  prepare<P extends unknown[] | {} = unknown[], R = unknown>(source: string): P extends unknown[] ? SqliteStatement<P, R> : SqliteStatement<[P], R>;
} & BetterSqlite3.Database;

/** Timeline rows per multi-row INSERT: one statement step for many rows (fewer crossings into SQLite). */
const TIMELINE_ROWS_PER_INSERT = 64;
/** Message events per multi-row INSERT (14 parameters each). */
const EVENT_ROWS_PER_INSERT = 64;
/** clientMsgIds looked up per statement. */
const DEDUPE_KEYS_PER_QUERY = 64;
/** Counter rows per UPDATE … FROM (VALUES …) statement (SQLite ≥ 3.33). */
const COUNTER_ROWS_PER_UPDATE = 64;

/** A user's entries after a position, with their events, from one of the two timeline tables. */
function timelineRows(table: 'timeline' | 'timeline_recent'): string {
  return `SELECT t.pos, t.conv, ${EVENT_COLUMNS} FROM ${table} t
       JOIN events e ON e.conv = t.conv AND e.seq = t.seq JOIN users su ON su.id = e.sender
       WHERE t.user = ? AND t.pos > ? ORDER BY t.pos LIMIT ?`;
}

/** The store's statements, prepared once per connection in init(); retention's are in sqlite-retention.ts. */
export function prepareStatements(db: SqliteDatabase) {
  return {
    userId: db.prepare<[string, Buffer], number>('SELECT id FROM users WHERE tenant_id = ? AND user_id = ?').pluck(),
    insertUser: db.prepare<[string, Buffer]>('INSERT INTO users (tenant_id, user_id) VALUES (?, ?)'),
    userCounters: db.prepare<[number], { last_pos: number; acked_pos: number }>('SELECT last_pos, acked_pos FROM users WHERE id = ?'),
    setLastPos: db.prepare<[number, number]>('UPDATE users SET last_pos = ? WHERE id = ?'),
    /** A batch's new last positions, flat (id, last_pos) pairs. */
    setLastPosRows: new SqliteRowBatches(
      db,
      (v) => `UPDATE users SET last_pos = v.column2 FROM (VALUES ${v}) AS v WHERE users.id = v.column1`,
      2,
      COUNTER_ROWS_PER_UPDATE,
    ),
    userUuid: db.prepare<[number], Buffer>('SELECT user_id FROM users WHERE id = ?').pluck(),
    convByUuid: db.prepare<[Buffer], ConvRow>('SELECT id, uuid, tenant_id, kind FROM conversations WHERE uuid = ?'),
    convById: db.prepare<[number], ConvRow>('SELECT id, uuid, tenant_id, kind FROM conversations WHERE id = ?'),
    convByDirectKey: db.prepare<[string], number>('SELECT id FROM conversations WHERE direct_key = ?').pluck(),
    convState: db.prepare<[number], ConvState>('SELECT last_seq, last_at, closed, name, key_id FROM conversations WHERE id = ?'),
    insertConv: db.prepare<[Buffer, string, number, string | null, string | null, string | null, number, number]>(
      `INSERT INTO conversations (uuid, tenant_id, kind, direct_key, name, key_id, last_seq, last_at, closed, created_at)
       VALUES (?, ?, ?, ?, ?, ?, 0, ?, 0, ?)`,
    ),
    // last_at never moves back: a message's time is taken before it waits for its commit, and a
    // change committed meanwhile may carry a later one.
    setConvCounters: db.prepare<[number, number, number]>('UPDATE conversations SET last_seq = ?, last_at = max(last_at, ?) WHERE id = ?'),
    /** A batch's conversation counters, flat (id, last_seq, last_at) triples. */
    setConvCounterRows: new SqliteRowBatches(
      db,
      (v) => `UPDATE conversations SET last_seq = v.column2, last_at = max(last_at, v.column3) FROM (VALUES ${v}) AS v WHERE conversations.id = v.column1`,
      3,
      COUNTER_ROWS_PER_UPDATE,
    ),
    setConvName: db.prepare<[string, string | null, number]>('UPDATE conversations SET name = ?, key_id = ? WHERE id = ?'),
    closeConv: db.prepare<[number]>('UPDATE conversations SET closed = 1 WHERE id = ?'),
    directMembers: db
      .prepare<[number], Buffer>('SELECT u.user_id FROM members m JOIN users u ON u.id = m.user WHERE m.conv = ? ORDER BY m.user')
      .pluck(),
    currentMembers: db.prepare<[number], MemberRow>(
      `SELECT m.user, u.user_id, m.role, m.joined_seq FROM members m JOIN users u ON u.id = m.user
       WHERE m.conv = ? AND m.left_seq IS NULL ORDER BY m.joined_seq, u.user_id`,
    ),
    membership: db.prepare<
      [number, number],
      { role: number; joined_seq: number; left_seq: number | null; read_seq: number; delivered_seq: number; receipt_seq: number }
    >('SELECT role, joined_seq, left_seq, read_seq, delivered_seq, receipt_seq FROM members WHERE conv = ? AND user = ?'),
    memberCount: db.prepare<[number], number>('SELECT count(*) FROM members WHERE conv = ? AND left_seq IS NULL').pluck(),
    groupCount: db
      .prepare<[number], number>(
        `SELECT count(*) FROM members m JOIN conversations c ON c.id = m.conv
         WHERE m.user = ? AND m.left_seq IS NULL AND c.kind = ${KIND_GROUP}`,
      )
      .pluck(),
    upsertMember: db.prepare<[number, number, number, number]>(
      `INSERT INTO members (conv, user, role, joined_seq, left_seq, read_seq) VALUES (?, ?, ?, ?, NULL, 0)
       ON CONFLICT (conv, user) DO UPDATE SET role = excluded.role, joined_seq = excluded.joined_seq, left_seq = NULL,
         wrote = CASE WHEN members.left_seq IS NULL THEN members.wrote ELSE 0 END`,
    ),
    setLeft: db.prepare<[number, number, number]>('UPDATE members SET left_seq = ? WHERE conv = ? AND user = ?'),
    setRole: db.prepare<[number, number, number]>('UPDATE members SET role = ? WHERE conv = ? AND user = ?'),
    setReadSeq: db.prepare<[number, number, number]>('UPDATE members SET read_seq = ? WHERE conv = ? AND user = ?'),
    insertEventRows: new SqliteRowBatches(
      db,
      (v) => `INSERT INTO events (conv, seq, id, kind, sender, content, key_id, reply_to, attachments, mentions, hashtags, links, ts, client_msg_id) VALUES ${v}`,
      14,
      EVENT_ROWS_PER_INSERT,
    ),
    /** The stored events of flat (client_msg_id, sender) pairs, the one dedupe lookup (a batch's messages, an edit or a delete); the IS NOT NULL lets SQLite use the partial index. */
    findDuplicateRows: new SqliteRowBatches(
      db,
      (v) => `SELECT e.conv, e.sender AS sender_int, ${EVENT_COLUMNS} FROM events e JOIN users su ON su.id = e.sender
              WHERE e.client_msg_id IS NOT NULL AND (e.client_msg_id, e.sender) IN (VALUES ${v})`,
      2,
      DEDUPE_KEYS_PER_QUERY,
    ),
    insertEvent: db.prepare<
      [number, number, Buffer, number, number, string, string | null, Buffer | string | null, string | null, string, string, string, number, string | null]
    >(
      `INSERT INTO events (conv, seq, id, kind, sender, content, key_id, reply_to, attachments, mentions, hashtags, links, ts, client_msg_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    /** Flat (user, pos, conv, seq) rows into timeline_recent. */
    insertTimelineRows: new SqliteRowBatches(db, (v) => `INSERT INTO timeline_recent (user, pos, conv, seq) VALUES ${v}`, 4, TIMELINE_ROWS_PER_INSERT),
    insertSettledTimelineRows: new SqliteRowBatches(db, (v) => `INSERT INTO timeline (user, pos, conv, seq) VALUES ${v}`, 4, TIMELINE_ROWS_PER_INSERT),
    settleTimeline: db.prepare('INSERT INTO timeline SELECT user, pos, conv, seq FROM timeline_recent ORDER BY user, pos'),
    clearRecentTimeline: db.prepare('DELETE FROM timeline_recent'),
    countRecentTimeline: db.prepare<[], number>('SELECT count(*) FROM timeline_recent').pluck(),
    timelineSettled: db.prepare<[number, number, number], TimelineRow>(timelineRows('timeline')),
    timelineRecent: db.prepare<[number, number, number], TimelineRow>(timelineRows('timeline_recent')),
    firstPos: db
      .prepare<[number, number], number | null>(
        'SELECT coalesce((SELECT min(pos) FROM timeline WHERE user = ?), (SELECT min(pos) FROM timeline_recent WHERE user = ?))',
      )
      .pluck(),
    history: db.prepare<[number, number, number, number], RawEventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events e JOIN users su ON su.id = e.sender
       WHERE e.conv = ? AND e.seq >= ? AND e.seq <= ? AND e.kind NOT IN (${EVENT_EDIT}, ${EVENT_DELETE}) ORDER BY e.seq DESC LIMIT ?`,
    ),
    seqOfId: db.prepare<[Buffer, number], number>('SELECT seq FROM events WHERE id = ? AND conv = ?').pluck(),
    editsOf: db.prepare<[number, Buffer], RawEventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events e JOIN users su ON su.id = e.sender
       WHERE e.conv = ? AND e.reply_to = ? AND e.kind = ${EVENT_EDIT} ORDER BY e.seq`,
    ),
    lastMessage: db.prepare<[number, number], RawEventRow>(
      `SELECT ${EVENT_COLUMNS} FROM events e JOIN users su ON su.id = e.sender
       WHERE e.conv = ? AND e.kind IN (${EVENT_MESSAGE}, ${EVENT_TOMBSTONE}) AND e.seq >= ? ORDER BY e.seq DESC LIMIT 1`,
    ),
    unread: db
      .prepare<[number, number, number], number>(
        `SELECT count(*) FROM events WHERE conv = ? AND seq > ? AND kind = ${EVENT_MESSAGE} AND sender <> ?`,
      )
      .pluck(),
    listFirst: db.prepare<[number, number], ListRow>(
      `SELECT c.id, c.uuid, c.kind, c.name, c.key_id, c.last_seq, c.last_at, m.role, m.read_seq, m.joined_seq
       FROM members m JOIN conversations c ON c.id = m.conv
       WHERE m.user = ? AND m.left_seq IS NULL
       ORDER BY c.last_at DESC, c.uuid DESC LIMIT ?`,
    ),
    listAfter: db.prepare<[number, number, number, Buffer, number], ListRow>(
      `SELECT c.id, c.uuid, c.kind, c.name, c.key_id, c.last_seq, c.last_at, m.role, m.read_seq, m.joined_seq
       FROM members m JOIN conversations c ON c.id = m.conv
       WHERE m.user = ? AND m.left_seq IS NULL AND (c.last_at < ? OR (c.last_at = ? AND c.uuid < ?))
       ORDER BY c.last_at DESC, c.uuid DESC LIMIT ?`,
    ),
    deviceAcked: db.prepare<[number, string], number>('SELECT acked_pos FROM devices WHERE user = ? AND device_id = ?').pluck(),
    /** A session's resume point in one statement: the user's counters and, when named, the device's position. */
    syncState: db.prepare<[string | null, string, Buffer], { last_pos: number; acked_pos: number; device_pos: number | null }>(
      `SELECT u.last_pos, u.acked_pos, d.acked_pos AS device_pos FROM users u
       LEFT JOIN devices d ON d.user = u.id AND d.device_id = ?
       WHERE u.tenant_id = ? AND u.user_id = ?`,
    ),
    insertDevice: db.prepare<[number, string, number]>('INSERT INTO devices (user, device_id, acked_pos) VALUES (?, ?, ?)'),
    setDeviceAcked: db.prepare<[number, number, string]>('UPDATE devices SET acked_pos = ? WHERE user = ? AND device_id = ?'),
    /** Past the bound, the least-advanced of the user's other devices go (ties: the higher id). */
    trimDevices: db.prepare<[{ user: number; keep: string; others: number }]>(
      `DELETE FROM devices WHERE user = @user AND device_id IN (
         SELECT device_id FROM devices WHERE user = @user AND device_id <> @keep
         ORDER BY acked_pos DESC, device_id LIMIT -1 OFFSET @others)`,
    ),
    setUserAcked: db.prepare<[number, number]>('UPDATE users SET acked_pos = max(acked_pos, ?) WHERE id = ?'),
    ping: db.prepare('SELECT 1').pluck(),
    dataVersion: db.prepare<[], number>('PRAGMA data_version').pluck(),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;

/** Statements for receipts, edits and deletes, and presence settings (schema 3), apart from the message path's. */
export function prepareFeatures(db: SqliteDatabase, eventColumns: string) {
  return {
    eventById: db.prepare<[Buffer], RawEventRow & { conv: number; sender_int: number }>(
      `SELECT e.conv, e.sender AS sender_int, ${eventColumns} FROM events e JOIN users su ON su.id = e.sender WHERE e.id = ?`,
    ),
    setBody: db.prepare<[string, string | null, string | null, string, string, string, number, number, number]>(
      `UPDATE events SET content = ?, key_id = ?, attachments = ?, mentions = ?, hashtags = ?, links = ?, edited_at = ?
       WHERE conv = ? AND seq = ?`,
    ),
    tombstone: db.prepare<[string, number, number]>(
      `UPDATE events SET kind = ${EVENT_TOMBSTONE}, content = ?, key_id = NULL, attachments = NULL, mentions = '[]',
         hashtags = '[]', links = '[]', reply_to = NULL, edited_at = NULL
       WHERE conv = ? AND seq = ?`,
    ),
    eraseEdits: db.prepare<[number, Buffer]>(
      `UPDATE events SET content = '', key_id = NULL, attachments = NULL, mentions = '[]', hashtags = '[]', links = '[]'
       WHERE conv = ? AND reply_to = ? AND kind = ${EVENT_EDIT}`,
    ),
    /** One UPDATE for every conversation an ack covers: the highest seq per conversation in (from, to]. */
    advanceDelivered: db.prepare<[{ user: number; from: number; to: number }], { conv: number; delivered_seq: number }>(
      `UPDATE members SET delivered_seq = x.mx
       FROM (SELECT conv, max(seq) AS mx FROM (
               SELECT conv, seq FROM timeline WHERE user = @user AND pos > @from AND pos <= @to
               UNION ALL SELECT conv, seq FROM timeline_recent WHERE user = @user AND pos > @from AND pos <= @to)
             GROUP BY conv) AS x
       WHERE members.conv = x.conv AND members.user = @user AND members.delivered_seq < x.mx
       RETURNING members.conv, members.delivered_seq`,
    ),
    readState: db.prepare<[number, number], { read_seq: number; receipt_seq: number; left_seq: number | null }>(
      'SELECT read_seq, receipt_seq, left_seq FROM members WHERE conv = ? AND user = ?',
    ),
    setRead: db.prepare<[number, number, number, number]>('UPDATE members SET read_seq = ?, receipt_seq = ? WHERE conv = ? AND user = ?'),
    /** An edit's or delete's seq: last_seq only (last_at is activity: messages and membership changes). */
    setConvSeq: db.prepare<[number, number]>('UPDATE conversations SET last_seq = ? WHERE id = ?'),
    // With `privacy` (1), only members who have written in the conversation (Audience). A member
    // counts as having every seq before their joined_seq (not theirs to receive: a newcomer, or a
    // re-added member whose stored positions are from an earlier membership), so a join never moves
    // the others' ticks back — as unread counts start at joined_seq - 1, whatever chat.groupHistory.
    receiptSummary: db.prepare<[number, number, number], { n: number; d: number; r: number }>(
      `SELECT count(*) AS n, coalesce(min(max(delivered_seq, joined_seq - 1)), 0) AS d,
         coalesce(min(max(receipt_seq, joined_seq - 1)), 0) AS r
       FROM members WHERE conv = ? AND left_seq IS NULL AND user <> ? AND (? = 0 OR wrote = 1)`,
    ),
    receiptMembers: db.prepare<[number, number, number], { user_id: Buffer; delivered_seq: number; receipt_seq: number }>(
      `SELECT u.user_id, max(m.delivered_seq, m.joined_seq - 1) AS delivered_seq, max(m.receipt_seq, m.joined_seq - 1) AS receipt_seq
       FROM members m JOIN users u ON u.id = m.user
       WHERE m.conv = ? AND m.left_seq IS NULL AND m.user <> ? AND (? = 0 OR m.wrote = 1) ORDER BY m.joined_seq, u.user_id`,
    ),
    /** Users sharing a current conversation with the caller; with `privacy` (1), one the caller has written in (Audience). */
    contacts: db
      .prepare<[number, number], Buffer>(
        `SELECT DISTINCT u.user_id FROM members me
         JOIN members o ON o.conv = me.conv AND o.left_seq IS NULL AND o.user <> me.user
         JOIN users u ON u.id = o.user
         WHERE me.user = ? AND me.left_seq IS NULL AND (? = 0 OR me.wrote = 1)`,
      )
      .pluck(),
    /** A member's earlier membership periods (schema 8: they were re-added since). */
    periodsOf: db.prepare<[number, number], MembershipPeriod>('SELECT joined_seq, left_seq FROM member_periods WHERE conv = ? AND user = ?'),
    /** The members who have written in a conversation. */
    writersOf: db.prepare<[number], number>('SELECT user FROM members WHERE conv = ? AND wrote = 1').pluck(),
    setWrote: db.prepare<[number, number]>('UPDATE members SET wrote = 1 WHERE conv = ? AND user = ? AND wrote = 0'),
    setPresence: db.prepare<[number, number]>('UPDATE users SET presence = ? WHERE id = ?'),
    presenceOf: db.prepare<[number], number | null>('SELECT presence FROM users WHERE id = ?').pluck(),
    checkpoint: db.prepare('PRAGMA wal_checkpoint(TRUNCATE)'),
  };
}

export type FeatureStatements = ReturnType<typeof prepareFeatures>;
