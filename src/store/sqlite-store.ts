/**
 * The embedded Store (storage v2): one SQLite file through better-sqlite3 (synchronous, so each
 * method runs to completion on the event loop; there is no connection pool to size). Statements
 * are prepared once in init(); every write runs as one BEGIN IMMEDIATE transaction, so a second
 * process on the same file waits (busy_timeout) instead of failing halfway through a batch.
 *
 * Compact keys inside: users and conversations get INTEGER ids, UUIDs are 16-byte BLOBs; events
 * are appended to a rowid table (unique indexes (conv, seq), id, and the dedupe key), timeline rows
 * to a small WITHOUT ROWID table keyed (user, pos), moved in sorted batches into the large one.
 * A batch writes each user's and conversation's counters once, and reads them only when they are not cached. Small caches map (tenant, uuid) →
 * integer id and hold committed counters; they are filled only from committed data, and the
 * counters are dropped whenever another connection has written (`PRAGMA data_version`).
 */
import { randomUUID } from 'node:crypto';
import type BetterSqlite3 from 'better-sqlite3';
import { Database } from './sqlite-driver.js';
import { isKeyError, type ContentCipher } from './content-cipher.js';
import { SqliteRowBatches } from './sqlite-row-batches.js';
import { CommittedCache } from './committed-cache.js';
import {
  EVENT_DELETE,
  EVENT_EDIT,
  EVENT_MEMBERSHIP,
  EVENT_MESSAGE,
  EVENT_TOMBSTONE,
  EventCodec,
  KIND_DIRECT,
  KIND_GROUP,
  ROLE_ADMIN,
  ROLE_MEMBER,
  ROLE_OWNER,
  directKey,
  roleName,
  type EventContext,
  type EventRow,
  type MembershipPayload,
} from './message-codec.js';
import { MAX_DEVICES_PER_USER } from './store.js';
import type {
  AddMembersRequest,
  Audience,
  PrivacyOption,
  AppendOptions,
  AppendOutcome,
  ConversationEvent,
  TimelineEntry,
  ConversationListPage,
  ConversationListQuery,
  ConversationRef,
  ConversationSummary,
  CreateGroupRequest,
  Delivery,
  GroupChangeOutcome,
  GroupLimits,
  HistoryPage,
  HistoryQuery,
  LeaveGroupRequest,
  MemberRole,
  MembershipEvent,
  NewMessage,
  RemoveMembersRequest,
  RenameGroupRequest,
  SetRoleRequest,
  Store,
  SyncState,
  AckResult,
  ConversationReceipts,
  DeleteMessageRequest,
  EditMessageRequest,
  MessageChangeEvent,
  MessageEditEvent,
  MessageChangeOptions,
  MessageChangeOutcome,
  ReadResult,
  StoredMessage,
  TimelinePage,
} from './store.js';
import { bytesToUuid, isUuid, uuidToBytes, uuidV7LowerBound } from './uuid-bytes.js';
import { decodeListCursor, encodeListCursor } from './list-cursor.js';
import { atInboxBound, backlogFloor, namedByMembership, type MembershipBound } from './inbox-bound.js';
import { isRefusedChange, RefusedChange } from './refused-change.js';
import { asSeenByFormerMember, formerMemberPage, seenUntil, type MembershipPeriod } from './former-member-view.js';

export interface SqliteStoreOptions extends PrivacyOption {
  /** Seal user-written fields at rest. */
  cipher?: ContentCipher;
  /**
   * `NORMAL` (default): WAL without an fsync per commit. A committed batch survives a killed or
   * crashed process, but the last commits may be lost on an OS crash or power loss.
   * `FULL`: every commit is fsynced before appendMessages resolves. Choose it with
   * `storage: "sqlite:PATH?synchronous=full"`.
   */
  synchronous?: 'FULL' | 'NORMAL';
  /** How long a write waits for another process holding the file's write lock. Default 5000 ms. */
  busyTimeoutMs?: number;
  /**
   * Timeline batching (schema 5), tuning only: recent entries move into the settled timeline once
   * there are `recent` of them (default 4096); a transaction writing `direct` or more entries
   * (default 1024) writes them straight into the settled timeline. Tests set them tiny to move often.
   */
  timelineBatch?: { recent: number; direct: number };
  /**
   * Retention slices, tuning only (positive integers): timeline entries examined and events deleted
   * per transaction (defaults 10,000 and 5,000: a few milliseconds each), and expired events taken
   * per pass (default 50,000; their keys are held in memory, ~30 bytes each). Tests set them tiny.
   */
  pruneSlice?: Partial<PruneSlice>;
  /** Entries each id cache (users, conversations, direct pairs) holds before it starts over. Default 100 000. */
  idCacheLimit?: number;
}

/** Ordered: index i brings the schema from version i to i + 1. Never edit a shipped entry. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE messages (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     tenant_id TEXT NOT NULL,
     sender_id TEXT NOT NULL,
     recipient_id TEXT NOT NULL,
     conv TEXT NOT NULL,
     content TEXT NOT NULL,
     key_id TEXT,
     reply_to TEXT,
     attachments TEXT,
     mentions TEXT NOT NULL,
     hashtags TEXT NOT NULL,
     links TEXT NOT NULL,
     timestamp INTEGER NOT NULL,
     client_msg_id TEXT,
     acked_at INTEGER
   );
   CREATE UNIQUE INDEX messages_dedupe ON messages (tenant_id, sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
   CREATE INDEX messages_pending ON messages (tenant_id, recipient_id, seq) WHERE acked_at IS NULL;
   CREATE INDEX messages_conv ON messages (tenant_id, conv, seq);
   CREATE INDEX messages_timestamp ON messages (timestamp);
   CREATE TABLE inbox_counts (
     tenant_id TEXT NOT NULL,
     recipient_id TEXT NOT NULL,
     unacked INTEGER NOT NULL,
     PRIMARY KEY (tenant_id, recipient_id)
   ) WITHOUT ROWID;`,
  // Storage v2: conversations, per-user timelines, devices. Then every v1 message becomes an event
  // of its pair's direct conversation, and each user's timeline replays v1: first what they sent
  // or acked (acked_pos covers it), then their unacked inbox, each in v1 seq order (an unacked
  // note to self is part of the inbox, as v1 would have delivered it).
  `CREATE TABLE users (
     id INTEGER PRIMARY KEY,
     tenant_id TEXT NOT NULL,
     user_id BLOB NOT NULL,
     last_pos INTEGER NOT NULL DEFAULT 0,
     acked_pos INTEGER NOT NULL DEFAULT 0,
     UNIQUE (tenant_id, user_id)
   );
   CREATE TABLE conversations (
     id INTEGER PRIMARY KEY,
     uuid BLOB NOT NULL UNIQUE,
     tenant_id TEXT NOT NULL,
     kind INTEGER NOT NULL,
     direct_key TEXT UNIQUE,
     name TEXT,
     key_id TEXT,
     last_seq INTEGER NOT NULL DEFAULT 0,
     last_at INTEGER NOT NULL DEFAULT 0,
     closed INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL
   );
   CREATE TABLE members (
     conv INTEGER NOT NULL,
     user INTEGER NOT NULL,
     role INTEGER NOT NULL DEFAULT 0,
     joined_seq INTEGER NOT NULL,
     left_seq INTEGER,
     read_seq INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (conv, user)
   ) WITHOUT ROWID;
   CREATE INDEX members_user ON members (user);
   CREATE TABLE events (
     conv INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     id BLOB NOT NULL UNIQUE,
     kind INTEGER NOT NULL,
     sender INTEGER NOT NULL,
     content TEXT NOT NULL,
     key_id TEXT,
     reply_to BLOB,
     attachments TEXT,
     mentions TEXT NOT NULL,
     hashtags TEXT NOT NULL,
     links TEXT NOT NULL,
     ts INTEGER NOT NULL,
     client_msg_id TEXT,
     PRIMARY KEY (conv, seq)
   ) WITHOUT ROWID;
   CREATE UNIQUE INDEX events_dedupe ON events (sender, client_msg_id) WHERE client_msg_id IS NOT NULL;
   CREATE TABLE timeline (
     user INTEGER NOT NULL,
     pos INTEGER NOT NULL,
     conv INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     PRIMARY KEY (user, pos)
   ) WITHOUT ROWID;
   CREATE TABLE devices (
     user INTEGER NOT NULL,
     device_id TEXT NOT NULL,
     acked_pos INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (user, device_id)
   ) WITHOUT ROWID;

   INSERT INTO users (tenant_id, user_id)
     SELECT tenant_id, unhex(replace(sender_id, '-', '')) FROM messages
     UNION SELECT tenant_id, unhex(replace(recipient_id, '-', '')) FROM messages;
   CREATE TEMP TABLE v1m AS
     SELECT m.seq AS v1seq, su.id AS s, ru.id AS r, min(su.id, ru.id) || ':' || max(su.id, ru.id) AS dk,
            m.tenant_id, m.id, m.content, m.key_id, m.reply_to, m.attachments, m.mentions, m.hashtags, m.links,
            m.timestamp, m.client_msg_id, m.acked_at
     FROM messages m
     JOIN users su ON su.tenant_id = m.tenant_id AND su.user_id = unhex(replace(m.sender_id, '-', ''))
     JOIN users ru ON ru.tenant_id = m.tenant_id AND ru.user_id = unhex(replace(m.recipient_id, '-', ''));
   INSERT INTO conversations (uuid, tenant_id, kind, direct_key, last_seq, last_at, closed, created_at)
     SELECT unhex(substr(h, 1, 12) || '4' || substr(h, 14, 3) || substr('89AB', 1 + (unicode(substr(h, 17, 1)) % 4), 1) || substr(h, 18, 15)),
            tenant_id, 0, dk, n, last_at, 0, first_at
     FROM (SELECT hex(randomblob(16)) AS h, tenant_id, dk, count(*) AS n, max(timestamp) AS last_at, min(timestamp) AS first_at
           FROM v1m GROUP BY dk);
   INSERT INTO members (conv, user, role, joined_seq)
     SELECT c.id, p.u, 0, 1 FROM (SELECT dk, s AS u FROM v1m UNION SELECT dk, r FROM v1m) p
     JOIN conversations c ON c.direct_key = p.dk;
   INSERT INTO events (conv, seq, id, kind, sender, content, key_id, reply_to, attachments, mentions, hashtags, links, ts, client_msg_id)
     SELECT c.id, row_number() OVER (PARTITION BY v.dk ORDER BY v.v1seq), unhex(replace(v.id, '-', '')), 0, v.s,
            v.content, v.key_id,
            CASE WHEN v.reply_to IS NOT NULL AND length(v.reply_to) = 36 AND unhex(replace(v.reply_to, '-', '')) IS NOT NULL
                 THEN unhex(replace(v.reply_to, '-', '')) ELSE v.reply_to END,
            v.attachments, v.mentions, v.hashtags, v.links, v.timestamp, v.client_msg_id
     FROM v1m v JOIN conversations c ON c.direct_key = v.dk;
   INSERT INTO timeline (user, pos, conv, seq)
     SELECT u, row_number() OVER (PARTITION BY u ORDER BY part, v1seq), conv, seq FROM (
       SELECT v.s AS u, CASE WHEN v.r = v.s AND v.acked_at IS NULL THEN 1 ELSE 0 END AS part, v.v1seq, e.conv, e.seq FROM v1m v JOIN events e ON e.id = unhex(replace(v.id, '-', ''))
       UNION ALL
       SELECT v.r, CASE WHEN v.acked_at IS NULL THEN 1 ELSE 0 END, v.v1seq, e.conv, e.seq
       FROM v1m v JOIN events e ON e.id = unhex(replace(v.id, '-', '')) WHERE v.r <> v.s);
   UPDATE users SET
     last_pos = (SELECT count(*) FROM timeline t WHERE t.user = users.id),
     acked_pos = (SELECT count(*) FROM v1m v
                  WHERE (v.s = users.id AND v.r <> v.s) OR (v.r = users.id AND v.acked_at IS NOT NULL));
   DROP TABLE v1m;
   DROP TABLE messages;
   DROP TABLE inbox_counts;`,
  // Storage v3: events become a rowid table, appended in insertion (≈ id, time) order, with
  // (conv, seq) a small unique index. As a WITHOUT ROWID table keyed (conv, seq), every message
  // of a busy conversation was a ~300-byte insert into the middle of a full page (page splits,
  // several dirtied pages per commit, each written whole to the WAL): bench/store-append.ts went
  // from ~20 to ~15 µs per direct message with this change alone.
  `CREATE TABLE events_v3 (
     conv INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     id BLOB NOT NULL,
     kind INTEGER NOT NULL,
     sender INTEGER NOT NULL,
     content TEXT NOT NULL,
     key_id TEXT,
     reply_to BLOB,
     attachments TEXT,
     mentions TEXT NOT NULL,
     hashtags TEXT NOT NULL,
     links TEXT NOT NULL,
     ts INTEGER NOT NULL,
     client_msg_id TEXT
   );
   INSERT INTO events_v3 (conv, seq, id, kind, sender, content, key_id, reply_to, attachments, mentions, hashtags, links, ts, client_msg_id)
     SELECT conv, seq, id, kind, sender, content, key_id, reply_to, attachments, mentions, hashtags, links, ts, client_msg_id
     FROM events ORDER BY id;
   DROP TABLE events;
   ALTER TABLE events_v3 RENAME TO events;
   CREATE UNIQUE INDEX events_conv_seq ON events (conv, seq);
   CREATE UNIQUE INDEX events_id ON events (id);
   CREATE UNIQUE INDEX events_dedupe ON events (sender, client_msg_id) WHERE client_msg_id IS NOT NULL;`,
  // Schema 4: receipts (delivered and public read positions per member), edits and deletes
  // (edited_at; edit/delete events reference their message through reply_to), presence setting.
  // A member's delivered position starts at what their devices acknowledged so far.
  `ALTER TABLE members ADD COLUMN delivered_seq INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE members ADD COLUMN receipt_seq INTEGER NOT NULL DEFAULT 0;
   UPDATE members SET receipt_seq = read_seq,
     delivered_seq = coalesce((SELECT max(t.seq) FROM timeline t JOIN users u ON u.id = t.user
                               WHERE t.user = members.user AND t.conv = members.conv AND t.pos <= u.acked_pos), 0);
   ALTER TABLE events ADD COLUMN edited_at INTEGER;
   CREATE INDEX events_edits ON events (conv, reply_to) WHERE kind = 2;
   ALTER TABLE users ADD COLUMN presence INTEGER;`,
  // Schema 5: new timeline entries go to a small table of recent ones, moved into `timeline` in
  // one sorted batch every 4096 entries (SqliteStoreOptions.timelineBatch). Keyed (user, pos),
  // every commit wrote one entry per recipient into a different page of the large `timeline` tree
  // (one dirtied 4 KiB page per user per commit, each written to the WAL and checkpointed); the
  // small tree spans a few pages, and the batched move dirties each user's page once per batch instead of once per commit.
  // For every user, all recent positions are above all settled ones: readers take settled, then recent.
  `CREATE TABLE timeline_recent (
     user INTEGER NOT NULL,
     pos INTEGER NOT NULL,
     conv INTEGER NOT NULL,
     seq INTEGER NOT NULL,
     PRIMARY KEY (user, pos)
   ) WITHOUT ROWID;`,
  // Schema 6: the dedupe key is indexed (client_msg_id, sender) instead of (sender, client_msg_id):
  // the same uniqueness, but ordered by the client's id first. The SDK's ids are time-ordered
  // (`m-` + UUIDv7), so new keys append at the right edge of one index instead of landing in a
  // random page of each sender's range (one dirtied page per sender per commit).
  `CREATE UNIQUE INDEX IF NOT EXISTS events_client_msg ON events (client_msg_id, sender) WHERE client_msg_id IS NOT NULL;
   DROP INDEX events_dedupe;`,
  // Schema 7: who has written in each conversation (members.wrote): a member's presence and
  // receipts reach a conversation's other members only once they have (store.ts, Audience).
  // Existing rows: a member wrote if a message or change of theirs is stored there (kinds other
  // than membership, 1) — or if the conversation's first events were pruned: who wrote them can
  // no longer be told, so its members go on sharing as before the upgrade.
  `ALTER TABLE members ADD COLUMN wrote INTEGER NOT NULL DEFAULT 0;
   UPDATE members SET wrote = 1
     WHERE EXISTS (SELECT 1 FROM events e WHERE e.conv = members.conv AND e.sender = members.user AND e.kind <> 1)
        OR NOT EXISTS (SELECT 1 FROM events e WHERE e.conv = members.conv AND e.seq = 1);`,
  // Schema 8: earlier membership periods of members who were re-added. Re-adding overwrites the
  // members row (joined_seq, left_seq = NULL); the trigger keeps the period it ends, so the timeline
  // entries of that period go on showing each message as it stood when it ended
  // (former-member-view.ts), not edits made while the member was out. Re-adds before this
  // upgrade left no trace: their entries show the latest body, as before.
  `CREATE TABLE member_periods (
     conv INTEGER NOT NULL,
     user INTEGER NOT NULL,
     joined_seq INTEGER NOT NULL,
     left_seq INTEGER NOT NULL,
     PRIMARY KEY (conv, user, joined_seq)
   ) WITHOUT ROWID;
   CREATE TRIGGER members_rejoined AFTER UPDATE OF left_seq ON members
     WHEN old.left_seq IS NOT NULL AND new.left_seq IS NULL
     BEGIN
       INSERT OR REPLACE INTO member_periods (conv, user, joined_seq, left_seq) VALUES (old.conv, old.user, old.joined_seq, old.left_seq);
     END;`,
  // Schema 9: schema 7 counted a delete (kind 3, whose sender is whoever deleted) as writing, so a
  // moderator who only ever deleted others' messages was upgraded to sharing their presence and
  // receipts; the running code never marks a delete. Un-marked: members whose only non-membership
  // events there are deletes, in a conversation whose first event is still stored (else schema 7
  // could not tell either, and kept them sharing).
  `UPDATE members SET wrote = 0
     WHERE wrote = 1
       AND EXISTS (SELECT 1 FROM events e WHERE e.conv = members.conv AND e.sender = members.user AND e.kind = 3)
       AND NOT EXISTS (SELECT 1 FROM events e WHERE e.conv = members.conv AND e.sender = members.user AND e.kind IN (0, 2, 4))
       AND EXISTS (SELECT 1 FROM events e WHERE e.conv = members.conv AND e.seq = 1);`,
  // Schema 10: re-adding a former member kept members.wrote from the earlier membership (their
  // presence and receipts reached whoever was in the group, before they wrote again); the running
  // code resets it. Un-marked: current members with no message, edit or tombstone of theirs since
  // they (re)joined, where the event that let them in is still stored (so is everything after it;
  // else who wrote since cannot be told, and they go on sharing). Re-adds from before schema 8
  // are found too: a first-time member is marked only by writing after joining.
  `UPDATE members SET wrote = 0
     WHERE wrote = 1 AND left_seq IS NULL
       AND EXISTS (SELECT 1 FROM events e WHERE e.conv = members.conv AND e.seq = members.joined_seq)
       AND NOT EXISTS (SELECT 1 FROM events e
                       WHERE e.conv = members.conv AND e.sender = members.user AND e.seq >= members.joined_seq AND e.kind IN (0, 2, 4));`,
  // Schema 11: schema 7 was changed after it first shipped: its first text marked a member as
  // having written only in direct conversations, and a database that ran that text never ran the
  // later one. And schema 10 counted an edit (kind 2) as writing, which the running code never
  // does: a member re-added who only edited an earlier message of theirs kept their mark. So each
  // current member is marked as the running code would have them: written iff a message of theirs
  // (kind 0, or 4 once deleted) is stored since they (re)joined — left as it is where the event
  // that let them in is gone (who wrote since cannot be told). A no-op on a database that ran 7's
  // later text and never saw such an edit.
  `UPDATE members SET wrote = 1
     WHERE wrote = 0 AND left_seq IS NULL
       AND EXISTS (SELECT 1 FROM events e
                   WHERE e.conv = members.conv AND e.sender = members.user AND e.seq >= members.joined_seq AND e.kind IN (0, 4));
   UPDATE members SET wrote = 0
     WHERE wrote = 1 AND left_seq IS NULL
       AND EXISTS (SELECT 1 FROM events e WHERE e.conv = members.conv AND e.seq = members.joined_seq)
       AND NOT EXISTS (SELECT 1 FROM events e
                       WHERE e.conv = members.conv AND e.sender = members.user AND e.seq >= members.joined_seq AND e.kind IN (0, 4));`,
  // Schema 12: retention of messages upgraded from storage v1. v1 servers before UUIDv7 ids
  // (ac4f47e) minted message ids with randomUUID() (version 4), and schema 2 kept them; retention
  // prunes by id (`id < bound`, time-ordered only for UUIDv7), so such a message was pruned or
  // kept by its random first bytes, not its age. Every event a v2 node stores has a UUIDv7 id (the
  // version is the 13th hex digit of the 16-byte BLOB), so the others are exactly the upgraded v1
  // messages: indexed by time, for retention to prune them by ts (pruneOlderThan, LEGACY_ID).
  // Small: no new row ever enters it.
  `CREATE INDEX IF NOT EXISTS events_legacy_ts ON events (ts) WHERE substr(hex(id), 13, 1) <> '7';`,
];

/**
 * An events row whose id is not a UUIDv7: a message upgraded from storage v1 with a random
 * (version 4) id. Written exactly as schema 12's partial index events_legacy_ts, so the planner
 * can use it (a partial index serves only queries whose WHERE holds its condition as written).
 */
const LEGACY_ID = "substr(hex(id), 13, 1) <> '7'";
/** Its complement: a UUIDv7 id (which `id < bound` prunes by its time). */
const V7_ID = "substr(hex(id), 13, 1) = '7'";

/** The schema migrations in order (exported for the upgrade tests; never edit a shipped entry). */
export const SQLITE_MIGRATIONS: readonly string[] = MIGRATIONS;

/**
 * `recent`: entries kept in timeline_recent before they move into `timeline` in one sorted batch
 * (schema 5). A few hundred KiB of tree: small enough that a commit dirties few of its pages, large
 * enough that the move dirties each active user's page of `timeline` once per many commits.
 * `direct`: a transaction writing at least this many entries (a batch of group messages: one per
 * member per message) writes them straight into `timeline`: they fill whole pages per user
 * anyway, and going through timeline_recent would write them twice.
 */
const TIMELINE_BATCH = { recent: 4096, direct: 1024 } as const;

/** Entries each counter cache may hold before it starts over (bounds memory only). */
const COUNTER_CACHE_LIMIT = 100_000;
/** Entries each id cache (users, conversations, direct pairs) holds before it starts over: bounds memory only. */
const ID_CACHE_LIMIT = 100_000;
/** Conversations whose member lists the members cache may hold before it starts over (bounds memory only). */
const MEMBERS_CACHE_LIMIT = 10_000;

const INBOX_FULL: AppendOutcome = Object.freeze({ status: 'inbox_full' });
const FORBIDDEN: AppendOutcome = Object.freeze({ status: 'forbidden' });
const M_FORBIDDEN: MessageChangeOutcome = Object.freeze({ status: 'forbidden' });
const G_FORBIDDEN: GroupChangeOutcome = Object.freeze({ status: 'forbidden' });
const G_UNCHANGED: GroupChangeOutcome = Object.freeze({ status: 'unchanged' });
const lower = (id: string): string => id.toLowerCase();
const G_TOO_MANY_MEMBERS: GroupChangeOutcome = Object.freeze({ status: 'too_many_members' });
const G_TOO_MANY_GROUPS: GroupChangeOutcome = Object.freeze({ status: 'too_many_groups' });

const EVENT_COLUMNS =
  'e.id, e.seq, e.kind, su.user_id AS sender, e.content, e.key_id, e.reply_to, e.attachments, e.mentions, e.hashtags, e.links, e.ts, e.client_msg_id, e.edited_at';

/** An events row as SQLite returns it (UUIDs as BLOBs). */
export interface RawEventRow {
  id: Buffer;
  seq: number;
  kind: number;
  sender: Buffer;
  content: string;
  key_id: string | null;
  reply_to: Buffer | string | null;
  attachments: string | null;
  mentions: string;
  hashtags: string;
  links: string;
  ts: number;
  client_msg_id: string | null;
  edited_at: number | null;
}

interface ConvRow {
  id: number;
  uuid: Buffer;
  tenant_id: string;
  kind: number;
}

interface ConvState {
  last_seq: number;
  last_at: number;
  closed: number;
  name: string | null;
  key_id: string | null;
}

interface MemberRow {
  user: number;
  user_id: Buffer;
  role: number;
  joined_seq: number;
}

/** Immutable facts about a conversation (safe to cache once committed). */
interface ConvInfo {
  id: number;
  uuid: string;
  tenantId: string;
  kind: number;
  /** Direct conversations: member uuids (never change). */
  directMembers?: string[];
}

function prepareAll(db: BetterSqlite3.Database) {
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
    ping: db.prepare('SELECT 1').pluck(),
    dataVersion: db.prepare<[], number>('PRAGMA data_version').pluck(),
  };
}

interface ListRow {
  id: number;
  uuid: Buffer;
  kind: number;
  name: string | null;
  key_id: string | null;
  last_seq: number;
  last_at: number;
  role: number;
  read_seq: number;
  joined_seq: number;
}

type Statements = ReturnType<typeof prepareAll>;

/** A user's counters while a batch is being decided. */
interface UserCounters {
  id: number;
  last: number;
  acked: number;
  dirty: boolean;
  /** `last` when the transaction first read it (its entries from then on are not in the tables yet). */
  start: number;
  /** Where the backlog starts (inbox-bound.ts), read at the bound once per transaction. */
  floor?: number;
}

interface ConvCounters {
  lastSeq: number;
  lastAt: number;
  closed: boolean;
  dirty: boolean;
}

interface Recipient {
  id: number;
  uuid: string;
}

function replyToColumn(replyTo: string | undefined): Buffer | string | null {
  if (replyTo === undefined) return null;
  return isUuid(replyTo) ? uuidToBytes(replyTo) : replyTo;
}

function toEventRow(raw: RawEventRow): EventRow {
  return {
    id: bytesToUuid(raw.id),
    seq: raw.seq,
    kind: raw.kind,
    sender: bytesToUuid(raw.sender),
    content: raw.content,
    key_id: raw.key_id,
    reply_to: raw.reply_to === null ? null : typeof raw.reply_to === 'string' ? raw.reply_to : bytesToUuid(raw.reply_to),
    attachments: raw.attachments,
    mentions: raw.mentions,
    hashtags: raw.hashtags,
    links: raw.links,
    ts: raw.ts,
    client_msg_id: raw.client_msg_id,
    edited_at: raw.edited_at,
  };
}

function clampLimit(limit: number): number {
  return Number.isFinite(limit) ? Math.max(0, Math.floor(limit)) : 0;
}

/** An ack waiting for its turn's transaction. */
interface PendingAck {
  tenantId: string;
  userId: string;
  deviceId: string | undefined;
  upTo: number;
  resolve(result: AckResult): void;
  reject(err: unknown): void;
}

export class SqliteStore implements Store {
  readonly #path: string;
  readonly #options: SqliteStoreOptions;
  readonly #pruneSlice: PruneSlice;
  /** Acks of this event-loop turn not written yet (see acknowledge). */
  #acks: PendingAck[] = [];
  #acksScheduled = false;
  readonly #codec: EventCodec;
  #db: BetterSqlite3.Database | undefined;
  #s: Statements | undefined;
  #f: FeatureStatements | undefined;
  /** tenant → user uuid → integer id (two levels: no key string built per lookup). */
  readonly #userIds = new Map<string, Map<string, number>>();
  /** conversation uuid → info, and id → info */
  readonly #convsByUuid = new Map<string, ConvInfo>();
  readonly #convsById = new Map<number, ConvInfo>();
  /** direct_key → conversations.id */
  readonly #directIds = new Map<string, number>();
  /** Users in #userIds, all tenants (the caches start over at #idCacheLimit: memory, not correctness). */
  #cachedUsers = 0;
  readonly #idCacheLimit: number;
  /**
   * Committed counters (users.last_pos/acked_pos, conversations.last_seq/last_at/closed), so a
   * batch need not read them again. Valid only while no other connection commits: every write
   * transaction compares `PRAGMA data_version` first and starts over when it moved. Every other
   * write of this connection drops them (see #write).
   */
  readonly #userCounters = new Map<number, { last: number; acked: number }>();
  readonly #convCounters = new Map<number, { lastSeq: number; lastAt: number; closed: boolean }>();
  #dataVersion = -1;
  /** Conversation → the members known to have written in it (see #noteWrote): committed, and never going back. */
  readonly #writers = new CommittedCache<number, Set<number>>(COUNTER_CACHE_LIMIT);
  /**
   * Current members per conversation, in `currentMembers` order. A receipt of a group goes to its
   * other members and a group message to all of them: without this, every receipt and every batch
   * re-read, re-sorted and re-converted the whole list (the largest cost of a 100-member group).
   * Valid while no other connection commits (`PRAGMA data_version`, compared on every use) and no
   * write of ours that may change membership ran (#write drops it after each).
   */
  readonly #membersCache = new CommittedCache<number, readonly Recipient[]>(MEMBERS_CACHE_LIMIT);
  /** Rows in timeline_recent (an estimate: it only decides when to settle them). */
  #recentTimelineRows = 0;
  /** Timeline entries of the running transaction, flat (user, pos, conv, seq), written at its end. */
  readonly #newTimeline: number[] = [];
  /** Cache fills made inside the running transaction: applied only once it commits. */
  #pending: (() => void)[] | undefined;
  /** Runs a #write's function in BEGIN IMMEDIATE … COMMIT, with the timeline entries it queued. */
  #transaction: BetterSqlite3.Transaction<(fn: () => unknown) => unknown> | undefined;

  /** `path` is a file path (its directory must exist) or ':memory:'. */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.#path = path;
    this.#options = options;
    this.#idCacheLimit = options.idCacheLimit ?? ID_CACHE_LIMIT;
    const slice = { ...PRUNE_SLICE, ...options.pruneSlice };
    for (const [key, value] of Object.entries(slice)) {
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`pruneSlice.${key} must be a positive integer`);
    }
    this.#pruneSlice = slice;
    this.#codec = new EventCodec(options.cipher);
  }

  async init(): Promise<void> {
    if (this.#db !== undefined) return;
    const db = new Database(this.#path);
    try {
      db.pragma('journal_mode = WAL');
      // A deleted message is erased, not just unlinked: freed bytes are overwritten.
      db.pragma('secure_delete = ON');
      db.pragma(`synchronous = ${this.#options.synchronous === 'FULL' ? 'FULL' : 'NORMAL'}`);
      // Checkpoint every ~40 MB of WAL instead of every 4 MB: checkpoints run inside a commit on
      // the event loop, and fewer, larger ones cost less per message.
      db.pragma('wal_autocheckpoint = 10000');
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(this.#options.busyTimeoutMs ?? 5000))}`);
      migrate(db);
      // After the migrations (an upgrade from v1 sorts every stored message in temp tables).
      // Statement journals (what a multi-row statement needs to undo itself) and sorts stay in
      // memory: as temp files they cost a write per page changed, which made multi-row INSERTs
      // slower than one row per statement on disk.
      db.pragma('temp_store = MEMORY');
      // Retention's working set: the keys of the events a prune pass deletes (this connection's own).
      db.exec('CREATE TEMP TABLE IF NOT EXISTS prune_keys (conv INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (conv, seq)) WITHOUT ROWID');
      resealGroupNames(db, this.#codec);
      const s = prepareAll(db);
      this.#s = s;
      this.#f = prepareFeatures(db, EVENT_COLUMNS);
      // Built once: better-sqlite3 makes a wrapper (and its begin/commit variants) per transaction().
      this.#transaction = db.transaction((fn: () => unknown): unknown => {
        // Another connection (process) committed since we last looked: our counters may be stale.
        const version = s.dataVersion.get()!;
        if (version !== this.#dataVersion) {
          this.#userCounters.clear();
          this.#convCounters.clear();
          this.#recentTimelineRows = s.countRecentTimeline.get()!;
          this.#dataVersion = version;
        }
        const out = fn();
        this.#writeTimeline(s);
        return out;
      });
    } catch (err) {
      db.close();
      throw err;
    }
    this.#db = db;
  }

  async appendMessages(batch: readonly NewMessage[], options: AppendOptions): Promise<AppendOutcome[]> {
    const s = this.#ready();
    if (batch.length === 0) return [];
    // The turn's acks so far ride in this transaction (before the messages, as when they came first).
    const acks = this.#takeAcks();
    if (acks.length === 0) return this.#write(() => this.#appendBatch(s, batch, options.maxInboxSize), true);
    let ackResults: AckResult[];
    let outcomes: AppendOutcome[];
    try {
      [ackResults, outcomes] = this.#write(() => [this.#applyAcks(s, acks, true), this.#appendBatch(s, batch, options.maxInboxSize)] as const, true);
    } catch (err) {
      // Rolled back with the messages, whose failure may be theirs alone: the acks go again in a
      // transaction of their own at the end of the turn (and fail there only for their own cause).
      this.#acks.unshift(...acks);
      if (!this.#acksScheduled) {
        this.#acksScheduled = true;
        setImmediate(this.#flushAcks);
      }
      throw err;
    }
    for (let i = 0; i < acks.length; i++) acks[i]!.resolve(ackResults[i]!);
    return outcomes;
  }

  // Users are named by uuid whatever its case: the comparisons and the events' payloads use the
  // lowercase form stored (as PostgreSQL does).
  async createGroup(request: CreateGroupRequest, limits: GroupLimits): Promise<GroupChangeOutcome> {
    const s = this.#ready();
    const r = { ...request, actorId: lower(request.actorId), memberIds: request.memberIds.map(lower) };
    return this.#groupWrite(() => this.#createGroup(s, r, limits));
  }

  /** `limits.maxInboxSize`: see MembershipBound (inbox-bound.ts), as for the four changes below. */
  async addMembers(request: AddMembersRequest, limits: GroupLimits & MembershipBound): Promise<GroupChangeOutcome> {
    const s = this.#ready();
    const r = { ...request, actorId: lower(request.actorId), userIds: request.userIds.map(lower) };
    return this.#groupWrite(() => this.#addMembers(s, r, limits));
  }

  async removeMembers(request: RemoveMembersRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    const s = this.#ready();
    const r = { ...request, actorId: lower(request.actorId), userIds: request.userIds.map(lower) };
    return this.#groupWrite(() => this.#removeMembers(s, r, bound));
  }

  async leaveGroup(request: LeaveGroupRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    const s = this.#ready();
    const r = { ...request, actorId: lower(request.actorId) };
    return this.#groupWrite(() => this.#leaveGroup(s, r, bound));
  }

  async renameGroup(request: RenameGroupRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    const s = this.#ready();
    const r = { ...request, actorId: lower(request.actorId) };
    return this.#groupWrite(() => this.#renameGroup(s, r, bound));
  }

  async setRole(request: SetRoleRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    const s = this.#ready();
    const r = { ...request, actorId: lower(request.actorId), userId: lower(request.userId) };
    return this.#groupWrite(() => this.#setRole(s, r, bound));
  }

  async directConversationId(tenantId: string, userId: string, peerId: string): Promise<string | undefined> {
    const s = this.#ready();
    const user = this.#userId(s, tenantId, userId, false);
    const peer = this.#userId(s, tenantId, peerId, false);
    if (user === undefined || peer === undefined) return undefined;
    const id = this.#directId(s, user, peer);
    return id === undefined ? undefined : this.#convInfoById(s, id).uuid;
  }

  async audienceOf(tenantId: string, conversationId: string, userId: string): Promise<Audience | undefined> {
    const s = this.#ready();
    const found = this.#currentMembership(s, tenantId, conversationId, userId);
    if (found === undefined) return undefined;
    const members = this.#members(s, found.conv).map((r) => r.uuid);
    // Floored at joined_seq - 1 as in receipts(): what came before the join is not theirs to receive.
    const floor = found.m.joined_seq - 1;
    const positions = { delivered: Math.max(found.m.delivered_seq, floor), read: Math.max(found.m.receipt_seq, floor) };
    if (this.#options.strangerPrivacy === false) return { members, sharing: members, positions };
    const writers = this.#writersOf(s, found.conv);
    return { members, sharing: members.filter((u) => writers.has(this.#userId(s, tenantId, u, false)!)), positions };
  }

  async membersIfMember(tenantId: string, conversationId: string, userId: string, options: { formerToo?: boolean } = {}): Promise<string[] | undefined> {
    const s = this.#ready();
    const conv = options.formerToo === true ? this.#formerMembership(s, tenantId, conversationId, userId) : this.#currentMembership(s, tenantId, conversationId, userId)?.conv;
    return conv === undefined ? undefined : this.#members(s, conv).map((r) => r.uuid);
  }

  /** The conversation's id if the user is or was a member of it. */
  #formerMembership(s: Statements, tenantId: string, conversationId: string, userId: string): number | undefined {
    const conv = this.#conv(s, tenantId, conversationId);
    const user = this.#userId(s, tenantId, userId, false);
    return conv === undefined || user === undefined || s.membership.get(conv.id, user) === undefined ? undefined : conv.id;
  }

  /** The user's membership row of the conversation, if they are a current member. */
  #currentMembership(s: Statements, tenantId: string, conversationId: string, userId: string) {
    const conv = this.#conv(s, tenantId, conversationId);
    const user = this.#userId(s, tenantId, userId, false);
    if (conv === undefined || user === undefined) return undefined;
    const m = s.membership.get(conv.id, user);
    return m === undefined || m.left_seq !== null ? undefined : { conv: conv.id, m };
  }

  /** The conversation's current members (see #membersCache). Never inside a write that changes membership. */
  #members(s: Statements, convId: number): readonly Recipient[] {
    return this.#membersCache.read(s.dataVersion.get()!, convId, () =>
      s.currentMembers.all(convId).map((r) => ({ id: r.user, uuid: bytesToUuid(r.user_id) })),
    );
  }

  async timeline(tenantId: string, userId: string, after: number, limit: number): Promise<TimelinePage> {
    const s = this.#ready();
    const user = this.#userId(s, tenantId, userId, false);
    if (user === undefined) return { entries: [], firstPos: 1, lastPos: 0 };
    // One read transaction: entries, first and last position agree with each other.
    return this.#db!.transaction(() => {
      const lastPos = s.userCounters.get(user)?.last_pos ?? 0;
      const firstPos = s.firstPos.get(user, user) ?? lastPos + 1;
      const n = clampLimit(limit);
      const from = Math.floor(after);
      const rows = n === 0 ? [] : s.timelineSettled.all(user, from, n);
      if (rows.length < n) rows.push(...s.timelineRecent.all(user, from, n - rows.length));
      const entries: TimelineEntry[] = [];
      for (const row of rows) {
        const event = this.#asSeenByMember(s, user, row.conv, this.#decode(s, row.conv, row));
        if (event !== undefined) entries.push({ pos: row.pos, event });
      }
      const page: TimelinePage = { entries, firstPos, lastPos };
      if (entries.length < rows.length) page.scanned = { count: rows.length, toPos: rows[rows.length - 1]!.pos };
      return page;
    })();
  }

  /**
   * A timeline entry of a conversation the user has left — or of an earlier membership, when they
   * were re-added since — shows an edited message as it stood when that membership ended, as
   * `history` does (former-member-view.ts); undefined when that body is no longer stored (the
   * device stream reports the hole as `timeline_pruned`).
   */
  #asSeenByMember(s: Statements, user: number, conv: number, event: ConversationEvent): ConversationEvent | undefined {
    if (event.kind !== 'message' || event.editedAt === undefined || event.deletedAt !== undefined) return event;
    const m = s.membership.get(conv, user);
    if (m === undefined) return event;
    const until = seenUntil(event.seq, m.joined_seq, m.left_seq, () => this.#f!.periodsOf.all(conv, user));
    if (until === undefined) return event;
    return asSeenByFormerMember([event], until, (messageId) => this.#editsOf(s, conv, messageId))[0];
  }

  #editsOf(s: Statements, conv: number, messageId: string): MessageEditEvent[] {
    return s.editsOf.all(conv, uuidToBytes(messageId)).map((row) => this.#decode(s, conv, row) as MessageEditEvent);
  }

  async syncState(tenantId: string, userId: string, deviceId?: string): Promise<SyncState> {
    const s = this.#ready();
    // One statement at every (re)connect instead of three (user id, counters, device).
    const row = isUuid(userId) ? s.syncState.get(deviceId ?? null, tenantId, uuidToBytes(userId)) : undefined;
    if (row === undefined) return { lastPos: 0, userAckedPos: 0 };
    const state: SyncState = { lastPos: row.last_pos, userAckedPos: row.acked_pos };
    if (row.device_pos !== null) state.deviceAckedPos = row.device_pos;
    return state;
  }

  async ack(tenantId: string, userId: string, deviceId: string | undefined, upTo: number): Promise<number> {
    const s = this.#ready();
    return this.#write(() => {
      const user = this.#userId(s, tenantId, userId, false);
      if (user === undefined) return 0;
      const c = s.userCounters.get(user)!;
      const target = Math.max(0, Math.min(Number.isFinite(upTo) ? Math.floor(upTo) : 0, c.last_pos));
      if (target > c.acked_pos) {
        s.setUserAcked.run(target, user);
        this.#rememberAcked(user, target);
      }
      if (deviceId === undefined) return Math.max(target, c.acked_pos);
      return this.#ackDevice(s, user, deviceId, target);
    }, true);
  }

  async history(tenantId: string, userId: string, ref: ConversationRef, query: HistoryQuery): Promise<HistoryPage | undefined> {
    const s = this.#ready();
    const user = this.#userId(s, tenantId, userId, false);
    let conv: ConvInfo | undefined;
    if ('peerId' in ref) {
      const peer = this.#userId(s, tenantId, ref.peerId, false);
      if (user === undefined || peer === undefined) return { events: [] };
      const id = this.#directId(s, user, peer);
      if (id === undefined) return { events: [] };
      conv = this.#convInfoById(s, id);
    } else {
      conv = this.#conv(s, tenantId, ref.conversationId);
    }
    if (conv === undefined || user === undefined) return undefined;
    const m = s.membership.get(conv.id, user);
    if (m === undefined) return undefined;
    const page: HistoryPage = { conversationId: conv.uuid, events: [] };
    const limit = clampLimit(query.limit);
    let lo = conv.kind === KIND_GROUP && query.groupHistory === 'since_join' ? m.joined_seq : 1;
    let hi = m.left_seq ?? Number.MAX_SAFE_INTEGER;
    if (query.beforeSeq !== undefined) hi = Math.min(hi, Math.floor(query.beforeSeq) - 1);
    if (query.beforeId !== undefined) {
      const seq = isUuid(query.beforeId) ? s.seqOfId.get(uuidToBytes(query.beforeId), conv.id) : undefined;
      if (seq === undefined) return page;
      hi = Math.min(hi, seq - 1);
    }
    lo = Math.max(lo, 1);
    if (limit === 0 || hi < lo) return page;
    const id = conv.id;
    const read = (top: number): ConversationEvent[] => s.history.all(id, lo, top, limit).map((row) => this.#decode(s, id, row));
    const left = m.left_seq;
    page.events =
      left === null
        ? read(hi)
        : await formerMemberPage(
            limit,
            (below) => read(below === undefined ? hi : below - 1),
            (events) => asSeenByFormerMember(events, left, (messageId) => this.#editsOf(s, id, messageId)),
          );
    return page;
  }

  async listConversations(tenantId: string, userId: string, query: ConversationListQuery): Promise<ConversationListPage> {
    const s = this.#ready();
    const user = this.#userId(s, tenantId, userId, false);
    const limit = clampLimit(query.limit);
    if (user === undefined || limit === 0) return { conversations: [] };
    let rows: ListRow[];
    if (query.before === undefined) {
      rows = s.listFirst.all(user, limit + 1);
    } else {
      const cursor = decodeListCursor(query.before);
      if (cursor === undefined) return { conversations: [] };
      rows = s.listAfter.all(user, cursor.lastAt, cursor.lastAt, uuidToBytes(cursor.conversationId), limit + 1);
    }
    const more = rows.length > limit;
    if (more) rows = rows.slice(0, limit);
    const allHistory = query.groupHistory === 'all';
    const conversations = this.#db!.transaction(() => rows.map((row) => this.#summary(s, user, userId, row, allHistory)))();
    const page: ConversationListPage = { conversations };
    if (more) {
      const last = rows[rows.length - 1]!;
      page.nextCursor = encodeListCursor(last.last_at, bytesToUuid(last.uuid));
    }
    return page;
  }

  async markRead(tenantId: string, userId: string, conversationId: string, upToSeq: number): Promise<number | undefined> {
    return (await this.updateRead(tenantId, userId, conversationId, upToSeq, { private: false }))?.readSeq;
  }

  async updateRead(tenantId: string, userId: string, conversationId: string, upToSeq: number, options: { private: boolean }): Promise<ReadResult | undefined> {
    const s = this.#ready();
    const f = this.#f!;
    return this.#write(() => {
      const conv = this.#conv(s, tenantId, conversationId);
      const user = this.#userId(s, tenantId, userId, false);
      if (conv === undefined || user === undefined) return undefined;
      const m = f.readState.get(conv.id, user);
      if (m === undefined || m.left_seq !== null) return undefined;
      const lastSeq = s.convState.get(conv.id)!.last_seq;
      const target = Math.min(Number.isFinite(upToSeq) ? Math.floor(upToSeq) : 0, lastSeq);
      const readSeq = Math.max(m.read_seq, target);
      const receiptSeq = options.private ? m.receipt_seq : Math.max(m.receipt_seq, target);
      if (readSeq !== m.read_seq || receiptSeq !== m.receipt_seq) f.setRead.run(readSeq, receiptSeq, conv.id, user);
      return { readSeq, receiptSeq, receiptMoved: receiptSeq !== m.receipt_seq };
    }, true);
  }

  /**
   * Acks are written together per event-loop turn (a commit costs far more than an ack's rows):
   * in the turn's message transaction when it runs first, else in one transaction of their own at
   * the end of the turn. Each promise settles once its transaction committed (or failed).
   */
  async acknowledge(tenantId: string, userId: string, deviceId: string | undefined, upTo: number): Promise<AckResult> {
    this.#ready();
    return new Promise<AckResult>((resolve, reject) => {
      this.#acks.push({ tenantId, userId, deviceId, upTo, resolve, reject });
      if (!this.#acksScheduled) {
        this.#acksScheduled = true;
        setImmediate(this.#flushAcks);
      }
    });
  }

  readonly #flushAcks = (): void => {
    this.#acksScheduled = false;
    const acks = this.#takeAcks();
    if (acks.length === 0) return;
    let results: AckResult[];
    try {
      const s = this.#ready();
      results = this.#write(() => this.#applyAcks(s, acks), true);
    } catch (err) {
      for (const a of acks) a.reject(err);
      return;
    }
    for (let i = 0; i < acks.length; i++) acks[i]!.resolve(results[i]!);
  };

  #takeAcks(): PendingAck[] {
    const acks = this.#acks;
    if (acks.length > 0) this.#acks = [];
    return acks;
  }

  /**
   * Inside #write: each ack in arrival order (a user's later ack sees its earlier one).
   * `beforeMessages`: messages follow in this transaction, and their backlog check must see these
   * acks: the users' cached counters (updated only after a commit) are dropped instead.
   */
  #applyAcks(s: Statements, acks: readonly PendingAck[], beforeMessages = false): AckResult[] {
    const f = this.#f!;
    return acks.map(({ tenantId, userId, deviceId, upTo }) => {
      const user = this.#userId(s, tenantId, userId, false);
      if (user === undefined) return { position: 0, delivered: [] };
      const c = s.userCounters.get(user)!;
      const target = Math.max(0, Math.min(Number.isFinite(upTo) ? Math.floor(upTo) : 0, c.last_pos));
      const delivered: AckResult['delivered'] = [];
      if (target > c.acked_pos) {
        s.setUserAcked.run(target, user);
        if (beforeMessages) this.#userCounters.delete(user);
        else this.#rememberAcked(user, target);
        for (const row of f.advanceDelivered.all({ user, from: c.acked_pos, to: target })) {
          delivered.push({ conversationId: this.#convInfoById(s, row.conv).uuid, delivered: row.delivered_seq });
        }
      }
      if (deviceId === undefined) return { position: Math.max(target, c.acked_pos), delivered };
      return { position: this.#ackDevice(s, user, deviceId, target), delivered };
    });
  }

  /**
   * Inside #write: move the device's position to `target` (never backwards) and return it. A new
   * device row past `maxDevicesPerUser` drops the user's least-advanced other devices.
   */
  #ackDevice(s: Statements, user: number, deviceId: string, target: number): number {
    const had = s.deviceAcked.get(user, deviceId);
    if (had !== undefined) {
      if (target > had) s.setDeviceAcked.run(target, user, deviceId);
      return Math.max(had, target);
    }
    s.insertDevice.run(user, deviceId, target);
    s.trimDevices.run({ user, keep: deviceId, others: (this.#options.maxDevicesPerUser ?? MAX_DEVICES_PER_USER) - 1 });
    return target;
  }

  async receipts(tenantId: string, userId: string, conversationIds: readonly string[], detailMax: number): Promise<Map<string, ConversationReceipts>> {
    const s = this.#ready();
    const f = this.#f!;
    const out = new Map<string, ConversationReceipts>();
    const user = this.#userId(s, tenantId, userId, false);
    if (user === undefined) return out;
    const privacy = this.#options.strangerPrivacy === false ? 0 : 1;
    this.#db!.transaction(() => {
      for (const id of conversationIds) {
        const conv = this.#conv(s, tenantId, id);
        if (conv === undefined) continue;
        const m = s.membership.get(conv.id, user);
        if (m === undefined || m.left_seq !== null) continue;
        const sum = f.receiptSummary.get(conv.id, user, privacy)!;
        const r: ConversationReceipts = { delivered: sum.d, read: sum.r };
        if (sum.n <= detailMax) {
          r.members = f.receiptMembers.all(conv.id, user, privacy).map((x) => ({ userId: bytesToUuid(x.user_id), delivered: x.delivered_seq, read: x.receipt_seq }));
        }
        out.set(conv.uuid, r);
      }
    })();
    return out;
  }

  async editMessage(request: EditMessageRequest, options: MessageChangeOptions): Promise<MessageChangeOutcome> {
    const s = this.#ready();
    return this.#write(() => this.#changeMessage(s, request, options, 'edit'));
  }

  async deleteMessage(request: DeleteMessageRequest, options: MessageChangeOptions): Promise<MessageChangeOutcome> {
    const s = this.#ready();
    const outcome = this.#write(() => this.#changeMessage(s, request, options, 'delete'));
    // Erased means gone from the files too: move the rewritten pages out of the WAL now.
    if (outcome.status === 'ok') this.#f!.checkpoint.run();
    return outcome;
  }

  async contactsOf(tenantId: string, userId: string): Promise<string[]> {
    const s = this.#ready();
    const user = this.#userId(s, tenantId, userId, false);
    if (user === undefined) return [];
    return this.#f!.contacts.all(user, this.#options.strangerPrivacy === false ? 0 : 1).map(bytesToUuid);
  }

  async setPresenceVisible(tenantId: string, userId: string, visible: boolean): Promise<void> {
    const s = this.#ready();
    this.#write(() => this.#f!.setPresence.run(visible ? 1 : 0, this.#userId(s, tenantId, userId, true)), true);
  }

  async presenceSettings(tenantId: string, userIds: readonly string[]): Promise<Map<string, boolean>> {
    const s = this.#ready();
    const out = new Map<string, boolean>();
    for (const u of userIds) {
      const id = this.#userId(s, tenantId, u, false);
      if (id === undefined) continue;
      const v = this.#f!.presenceOf.get(id);
      if (v !== null && v !== undefined) out.set(u, v !== 0);
    }
    return out;
  }

  /** Edit or delete inside the write transaction (see `MessageChangeOutcome`). */
  #changeMessage(s: Statements, r: EditMessageRequest | DeleteMessageRequest, o: MessageChangeOptions, what: 'edit' | 'delete'): MessageChangeOutcome {
    const f = this.#f!;
    const actor = this.#userId(s, r.tenantId, r.actorId, false);
    if (actor === undefined || !isUuid(r.messageId)) return M_FORBIDDEN;
    if (r.clientMsgId !== undefined) {
      const first = s.findDuplicateRows.all<RawEventRow & { conv: number }>([r.clientMsgId, actor])[0];
      if (first !== undefined) {
        const ctx = this.#context(this.#convInfoById(s, first.conv));
        return { status: 'duplicate', event: this.#codec.decodeDuplicateEvent(toEventRow(first), ctx) as MessageChangeEvent | StoredMessage };
      }
    }
    const row = f.eventById.get(uuidToBytes(r.messageId));
    if (row === undefined) return M_FORBIDDEN;
    const info = this.#convInfoById(s, row.conv);
    if (info.tenantId !== r.tenantId || (row.kind !== EVENT_MESSAGE && row.kind !== EVENT_TOMBSTONE)) return M_FORBIDDEN;
    const state = s.convState.get(info.id)!;
    const me = s.membership.get(info.id, actor);
    if (me === undefined || me.left_seq !== null || state.closed !== 0) return M_FORBIDDEN;
    const own = row.sender_int === actor;
    if (what === 'edit') {
      const window = o.editWindowMs ?? 0;
      if (!own || row.kind !== EVENT_MESSAGE || window <= 0 || r.timestamp - row.ts > window) return M_FORBIDDEN;
    } else {
      const moderator = info.kind === KIND_GROUP && (me.role === ROLE_OWNER || me.role === ROLE_ADMIN);
      if (!own && !moderator) return M_FORBIDDEN;
      if (row.kind === EVENT_TOMBSTONE) return { status: 'unchanged', message: this.#decode(s, info.id, row) as StoredMessage };
    }
    const seq = state.last_seq + 1;
    const messageBytes = uuidToBytes(r.messageId);
    if (what === 'edit') {
      const body = (r as EditMessageRequest).body;
      const e = this.#codec.encodeEdit(r.eventId, body);
      s.insertEvent.run(info.id, seq, uuidToBytes(r.eventId), EVENT_EDIT, actor, e.content, e.keyId, messageBytes, e.attachments, e.mentions, e.hashtags, e.links, r.timestamp, r.clientMsgId ?? null);
      const old = this.#decode(s, info.id, row) as StoredMessage;
      const m = this.#codec.encodeBody(r.messageId, { ...body, ...(old.attachments !== undefined ? { attachments: old.attachments } : {}) });
      f.setBody.run(m.content, m.keyId, m.attachments, m.mentions, m.hashtags, m.links, r.timestamp, info.id, row.seq);
    } else {
      s.insertEvent.run(info.id, seq, uuidToBytes(r.eventId), EVENT_DELETE, actor, '', null, messageBytes, null, '[]', '[]', '[]', r.timestamp, r.clientMsgId ?? null);
      f.tombstone.run(this.#codec.tombstoneContent(r.timestamp, r.actorId), info.id, row.seq);
      f.eraseEdits.run(info.id, messageBytes);
    }
    // The seq counter moves; the activity time does not: an edit or delete is a change, not activity
    // (it would reorder list_conversations under a paging cursor for members it is not even sent to).
    f.setConvSeq.run(seq, info.id);
    const deliveries: Delivery[] = [];
    // An edit skips a group member who joined after the message (not theirs to see under since_join);
    // a delete reaches every current member: it carries no content, and a member re-added since
    // may hold the message from an earlier membership (erasure must reach every copy).
    const editSkipsLater = what === 'edit' && info.kind === KIND_GROUP && o.groupHistory !== 'all';
    for (const m of s.currentMembers.all(info.id)) {
      if (m.user !== actor && editSkipsLater && m.joined_seq > row.seq) continue;
      const c = s.userCounters.get(m.user)!;
      // An edit skips a member at the bound, as a message does; a delete reaches every copy.
      if (what === 'edit' && m.user !== actor && c.last_pos - c.acked_pos >= o.maxInboxSize) {
        const floor = backlogFloor(c.acked_pos, s.firstPos.get(m.user, m.user), c.last_pos);
        if (atInboxBound(c.last_pos, c.acked_pos, o.maxInboxSize, floor)) continue;
      }
      const pos = c.last_pos + 1;
      this.#appendTimeline(m.user, pos, info.id, seq);
      s.setLastPos.run(pos, m.user);
      deliveries.push({ userId: bytesToUuid(m.user_id), pos });
    }
    const eventRow = f.eventById.get(uuidToBytes(r.eventId))!;
    const message = this.#decode(s, info.id, f.eventById.get(messageBytes)!) as StoredMessage;
    return { status: 'ok', event: this.#decode(s, info.id, eventRow) as MessageChangeEvent, message, deliveries };
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
  async pruneOlderThan(olderThan: number): Promise<number> {
    const bound = uuidToBytes(uuidV7LowerBound(olderThan));
    const oldTs = Math.floor(olderThan);
    const db = this.#db;
    this.#ready();
    // The temp table belongs to this connection: stop if the store was closed (or reopened) meanwhile.
    const statements = (): Statements | undefined => (this.#db === db ? this.#s : undefined);
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
      const [n, stopped] = await this.#pruneKind(kind, bound, statements);
      pruned += n;
      if (stopped) return pruned;
    }
    // As after a delete_message: the pruned rows' bytes leave the WAL now, not at some later checkpoint.
    if (pruned > 0 && statements() !== undefined) this.#f!.checkpoint.run();
    return pruned;
  }

  /** pruneOlderThan's passes over one kind of expired events: [events deleted, stopped (store closed)]. */
  async #pruneKind(kind: PruneKind, bound: Buffer, statements: () => Statements | undefined): Promise<[number, boolean]> {
    const slice = this.#pruneSlice;
    let pruned = 0;
    for (;;) {
      const s = statements();
      if (s === undefined) return [pruned, true];
      const keys = this.#write(() => {
        s.clearPruneKeys.run();
        const expired = kind.collect(s, slice.pass);
        if (expired > 0) s.collectEditKeys.run(bound);
        return expired;
      }, true);
      if (keys === 0) break; // nothing more expired (a pass may have ended exactly on the last ones: checkpoint below)
      this.#write(() => s.pruneRecentTimeline.run()); // a few thousand entries at most
      let after: { user: number; pos: number } | undefined = { user: -1, pos: -1 };
      while (after !== undefined) {
        await nextTurn();
        const t = statements();
        if (t === undefined) return [pruned, true];
        const from = after;
        after = this.#write(() => {
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
        const [n, edits] = this.#write(() => kind.slice(t, Math.min(left, slice.events)));
        pruned += n + edits;
        left = n === 0 ? 0 : left - n;
      }
      const u = statements();
      if (u === undefined) return [pruned, true];
      pruned += this.#write(() => u.pruneEditEvents.run(bound).changes);
      if (keys < slice.pass) break;
    }
    return [pruned, false];
  }

  async ping(): Promise<void> {
    this.#ready().ping.get();
  }

  /** How many ids the caches hold (bounded by `idCacheLimit`; for tests and diagnostics). */
  cachedIds(): { users: number; conversations: number; directPairs: number } {
    return { users: this.#cachedUsers, conversations: this.#convsByUuid.size, directPairs: this.#directIds.size };
  }

  async close(): Promise<void> {
    // Acks accepted before the close are written, not dropped.
    if (this.#db !== undefined) this.#flushAcks();
    const db = this.#db;
    this.#db = undefined;
    this.#s = undefined;
    this.#f = undefined;
    this.#transaction = undefined;
    this.#userIds.clear();
    this.#cachedUsers = 0;
    this.#convsByUuid.clear();
    this.#convsById.clear();
    this.#directIds.clear();
    this.#userCounters.clear();
    this.#convCounters.clear();
    this.#dataVersion = -1;
    this.#membersCache.clear();
    db?.close();
  }

  // -------------------------------------------------------------------------------------------

  #ready(): Statements {
    const s = this.#s;
    if (s === undefined) throw new Error('SqliteStore is not open: call init() first (or it was closed)');
    return s;
  }

  /**
   * One BEGIN IMMEDIATE transaction; cache fills it made apply only after COMMIT. `keepCounters`
   * true only for writes that move no cached counter (`last_pos`, a conversation's `last_seq`,
   * `last_at`, `closed`) or keep the cache in step themselves: appendMessages, acks (which update
   * the cached `acked_pos`), read positions, the presence setting. The rest — group changes,
   * edits, deletes, prune — drop the cache after them rather than trusting each path to update it.
   * (Acks dropped it too, until the relay's counter re-reads after every ack showed in profiles.)
   */
  /** A group change in one write; a refused one is rolled back (refused-change.ts). */
  #groupWrite(fn: () => GroupChangeOutcome): GroupChangeOutcome {
    try {
      return this.#write(() => {
        const outcome = fn();
        if (isRefusedChange(outcome)) throw new RefusedChange(outcome);
        return outcome;
      }, false);
    } catch (err) {
      if (err instanceof RefusedChange) return err.outcome;
      throw err;
    }
  }

  #write<R>(fn: () => R, keepCounters = false): R {
    const pending: (() => void)[] = [];
    this.#pending = pending;
    let result: R;
    try {
      result = this.#transaction!.immediate(fn) as R;
    } catch (err) {
      // Rolled back: state kept outside the database (the count of recent timeline rows, which a
      // settle may have zeroed) no longer matches it. Recount at the next write, as after another
      // connection's commit.
      this.#dataVersion = -1;
      throw err;
    } finally {
      this.#newTimeline.length = 0;
      this.#pending = undefined;
      if (!keepCounters) {
        this.#userCounters.clear();
        this.#convCounters.clear();
        this.#membersCache.clear();
      }
    }
    for (const apply of pending) apply();
    return result;
  }

  /** Queue a timeline entry of the running transaction (written by #writeTimeline before COMMIT). */
  #appendTimeline(user: number, pos: number, conv: number, seq: number): void {
    if (this.#pending === undefined) throw new Error('timeline entries are written inside #write only');
    this.#newTimeline.push(user, pos, conv, seq);
  }

  /**
   * Write the transaction's timeline entries: a few go to timeline_recent (settled into `timeline`
   * once it holds `timelineBatch.recent`); a large batch settles the recent ones first, then goes
   * straight into `timeline`. Either way, every user's recent positions stay
   * above their settled ones.
   */
  #writeTimeline(s: Statements): void {
    const rows = this.#newTimeline;
    const n = rows.length / 4;
    const batch = this.#options.timelineBatch ?? TIMELINE_BATCH;
    if (n >= batch.direct) {
      // Unconditionally: these rows must land above whatever timeline_recent holds (two cheap
      // statements when it is empty), whatever the count says.
      this.#settleTimeline(s, true);
      s.insertSettledTimelineRows.run(rows);
    } else {
      s.insertTimelineRows.run(rows);
      this.#recentTimelineRows += n;
      if (this.#recentTimelineRows >= batch.recent) this.#settleTimeline(s);
    }
    rows.length = 0;
  }

  #settleTimeline(s: Statements, always = false): void {
    if (this.#recentTimelineRows === 0 && !always) return;
    s.settleTimeline.run();
    s.clearRecentTimeline.run();
    this.#recentTimelineRows = 0;
  }

  /** After COMMIT, the cached counters of `user` (if any) know its new acknowledged position. */
  #rememberAcked(user: number, acked: number): void {
    this.#remember(() => {
      const cached = this.#userCounters.get(user);
      if (cached !== undefined) cached.acked = Math.max(cached.acked, acked);
    });
  }

  #remember(apply: () => void): void {
    if (this.#pending !== undefined) this.#pending.push(apply);
    else apply();
  }

  #userId(s: Statements, tenantId: string, uuid: string, create: true): number;
  #userId(s: Statements, tenantId: string, uuid: string, create: false): number | undefined;
  #userId(s: Statements, tenantId: string, uuid: string, create: boolean): number | undefined {
    const cached = this.#userIds.get(tenantId)?.get(uuid);
    if (cached !== undefined) return cached;
    if (!isUuid(uuid)) {
      if (create) throw new TypeError('user ids must be UUIDs');
      return undefined;
    }
    const bytes = uuidToBytes(uuid);
    let id = s.userId.get(tenantId, bytes);
    if (id === undefined) {
      if (!create) return undefined;
      id = Number(s.insertUser.run(tenantId, bytes).lastInsertRowid);
    }
    const found = id;
    this.#remember(() => {
      if (this.#cachedUsers >= this.#idCacheLimit) {
        this.#userIds.clear();
        this.#cachedUsers = 0;
      }
      let ids = this.#userIds.get(tenantId);
      if (ids === undefined) this.#userIds.set(tenantId, (ids = new Map()));
      if (!ids.has(uuid)) this.#cachedUsers++;
      ids.set(uuid, found);
    });
    return id;
  }

  #cacheConv(info: ConvInfo): void {
    this.#remember(() => {
      if (this.#convsByUuid.size >= this.#idCacheLimit) {
        this.#convsByUuid.clear();
        this.#convsById.clear();
      }
      this.#convsByUuid.set(info.uuid, info);
      this.#convsById.set(info.id, info);
    });
  }

  #cacheDirect(key: string, id: number): void {
    this.#remember(() => {
      if (this.#directIds.size >= this.#idCacheLimit) this.#directIds.clear();
      this.#directIds.set(key, id);
    });
  }

  #infoOf(s: Statements, row: ConvRow): ConvInfo {
    const info: ConvInfo = { id: row.id, uuid: bytesToUuid(row.uuid), tenantId: row.tenant_id, kind: row.kind };
    if (row.kind === KIND_DIRECT) info.directMembers = s.directMembers.all(row.id).map(bytesToUuid);
    return info;
  }

  /** The conversation with this uuid in this tenant (any kind), or undefined. */
  #conv(s: Statements, tenantId: string, uuid: string): ConvInfo | undefined {
    let info = this.#convsByUuid.get(uuid.toLowerCase());
    if (info === undefined) {
      if (!isUuid(uuid)) return undefined;
      const row = s.convByUuid.get(uuidToBytes(uuid));
      if (row === undefined) return undefined;
      info = this.#infoOf(s, row);
      this.#cacheConv(info);
    }
    return info.tenantId === tenantId ? info : undefined;
  }

  #convInfoById(s: Statements, id: number): ConvInfo {
    let info = this.#convsById.get(id);
    if (info === undefined) {
      info = this.#infoOf(s, s.convById.get(id)!);
      this.#cacheConv(info);
    }
    return info;
  }

  #directId(s: Statements, a: number, b: number): number | undefined {
    const key = directKey(a, b);
    const cached = this.#directIds.get(key);
    if (cached !== undefined) return cached;
    const id = s.convByDirectKey.get(key);
    if (id !== undefined) this.#cacheDirect(key, id);
    return id;
  }

  #context(info: ConvInfo): EventContext {
    const ctx: EventContext = {
      tenantId: info.tenantId,
      conversationId: info.uuid,
      conversationKind: info.kind === KIND_DIRECT ? 'direct' : 'group',
    };
    if (info.directMembers !== undefined) ctx.directMembers = info.directMembers;
    return ctx;
  }

  #decode(s: Statements, convId: number, raw: RawEventRow): ConversationEvent {
    return this.#codec.decode(toEventRow(raw), this.#context(this.#convInfoById(s, convId)));
  }

  #summary(s: Statements, user: number, userId: string, row: ListRow, allHistory: boolean): ConversationSummary {
    const info = this.#convInfoById(s, row.id);
    const direct = row.kind === KIND_DIRECT;
    const summary: ConversationSummary = {
      conversationId: info.uuid,
      kind: direct ? 'direct' : 'group',
      role: direct ? 'member' : roleName(row.role),
      memberCount: s.memberCount.get(row.id) ?? 0,
      lastSeq: row.last_seq,
      lastActivityAt: row.last_at,
      readSeq: row.read_seq,
      unreadCount: s.unread.get(row.id, Math.max(row.read_seq, row.joined_seq - 1), user) ?? 0,
    };
    if (direct) {
      const members = info.directMembers ?? [];
      summary.peerId = members.find((m) => m !== userId) ?? userId;
    } else if (row.name !== null) {
      summary.name = this.#codec.openName(info.uuid, row.name, row.key_id);
    }
    const last = s.lastMessage.get(row.id, direct || allHistory ? 0 : row.joined_seq);
    if (last !== undefined) summary.lastMessage = this.#codec.decodeMessage(toEventRow(last), this.#context(info));
    // Keep the documented key order stable for readers that print it.
    const ordered: ConversationSummary = {
      conversationId: summary.conversationId,
      kind: summary.kind,
      ...(summary.name === undefined ? {} : { name: summary.name }),
      ...(summary.peerId === undefined ? {} : { peerId: summary.peerId }),
      role: summary.role,
      memberCount: summary.memberCount,
      lastSeq: summary.lastSeq,
      lastActivityAt: summary.lastActivityAt,
      ...(summary.lastMessage === undefined ? {} : { lastMessage: summary.lastMessage }),
      readSeq: summary.readSeq,
      unreadCount: summary.unreadCount,
    };
    return ordered;
  }

  // --- appendMessages ---------------------------------------------------------------------

  /** Runs inside the transaction. Counters are read once per user/conversation and written once. */
  #appendBatch(s: Statements, batch: readonly NewMessage[], maxInboxSize: number): AppendOutcome[] {
    const out = new Array<AppendOutcome>(batch.length);
    const users = new Map<number, UserCounters>();
    const convs = new Map<number, ConvCounters>();
    const groupMembers = new Map<number, readonly Recipient[]>();
    /** The batch's message events, flat rows of the 14 columns of insertEventRows. */
    const eventRows: unknown[] = [];
    /** Messages of this batch stored with a clientMsgId, by (sender, clientMsgId). */
    let storedKeys: Map<string, StoredMessage> | undefined;
    // Messages stored by earlier transactions with this batch's clientMsgIds, found with one query
    // per 64 keys (a lookup each cost more than the rest of a direct message's statements).
    let earlierBatches: Map<string, RawEventRow & { conv: number }> | undefined;
    const senders = batch.map((m) => this.#userId(s, m.tenantId, m.senderId, true));
    /** Conversations of this batch: who has written in each (see #noteWrote), and the members to mark. */
    let wrote: Map<number, Set<number>> | undefined;
    const wroteRows: number[] = [];
    /** For each (conv, sender) pair of wroteRows, the index of the message that wrote it. */
    const wroteBy: number[] = [];
    const keys: unknown[] = [];
    for (let i = 0; i < batch.length; i++) if (batch[i]!.clientMsgId !== undefined) keys.push(batch[i]!.clientMsgId, senders[i]);
    if (keys.length > 0) {
      for (const row of s.findDuplicateRows.all<RawEventRow & { conv: number; sender_int: number }>(keys)) {
        (earlierBatches ??= new Map()).set(`${row.sender_int}\u0000${row.client_msg_id!}`, row);
      }
    }
    const counters = (id: number): UserCounters => {
      let c = users.get(id);
      if (c === undefined) {
        const cached = this.#userCounters.get(id);
        if (cached !== undefined) c = { id, last: cached.last, acked: cached.acked, dirty: false, start: cached.last };
        else {
          const row = s.userCounters.get(id)!;
          c = { id, last: row.last_pos, acked: row.acked_pos, dirty: false, start: row.last_pos };
        }
        users.set(id, c);
      }
      return c;
    };
    // The stored floor is read only at the bound (once per user and transaction): no query, and no
    // closure, per recipient on the common path.
    const full = (c: UserCounters): boolean => {
      if (c.last - c.acked < maxInboxSize) return false;
      c.floor ??= backlogFloor(c.acked, s.firstPos.get(c.id, c.id), c.start);
      return atInboxBound(c.last, c.acked, maxInboxSize, c.floor);
    };
    const convCounters = (id: number): ConvCounters => {
      let c = convs.get(id);
      if (c === undefined) {
        const cached = this.#convCounters.get(id);
        if (cached !== undefined) c = { lastSeq: cached.lastSeq, lastAt: cached.lastAt, closed: cached.closed, dirty: false };
        else {
          const row = s.convState.get(id)!;
          c = { lastSeq: row.last_seq, lastAt: row.last_at, closed: row.closed !== 0, dirty: false };
        }
        convs.set(id, c);
      }
      return c;
    };

    for (let i = 0; i < batch.length; i++) {
      const m = batch[i]!;
      const tenant = m.tenantId;
      const sender = senders[i]!;
      // Duplicate first: a retry of a stored message is answered even when the inbox is full.
      // The batch's events are inserted at its end, so its own earlier messages are found in
      // storedKeys, and earlier transactions' in earlierBatches.
      let batchKey: string | undefined;
      if (m.clientMsgId !== undefined) {
        batchKey = `${sender}\u0000${m.clientMsgId}`;
        const earlier = storedKeys?.get(batchKey);
        if (earlier !== undefined) {
          out[i] = { status: 'duplicate', message: structuredClone(earlier) }; // shares no arrays with the first
          continue;
        }
        const first = earlierBatches?.get(batchKey);
        if (first !== undefined) {
          const info = this.#convInfoById(s, first.conv);
          out[i] = { status: 'duplicate', message: this.#codec.decodeDuplicate(toEventRow(first), this.#context(info)) };
          continue;
        }
      }

      let info: ConvInfo;
      let recipients: readonly Recipient[];
      if ('peerId' in m.to) {
        const peerUuid = m.to.peerId;
        const peer = this.#userId(s, tenant, peerUuid, true);
        if (peer !== sender) {
          if (full(counters(peer))) {
            out[i] = INBOX_FULL;
            continue;
          }
        }
        info = this.#findOrCreateDirect(s, tenant, { id: sender, uuid: m.senderId }, { id: peer, uuid: peerUuid }, m.timestamp);
        recipients = peer === sender ? [{ id: sender, uuid: m.senderId }] : [{ id: sender, uuid: m.senderId }, { id: peer, uuid: peerUuid }];
      } else {
        const found = this.#conv(s, tenant, m.to.conversationId);
        if (found === undefined || convCounters(found.id).closed) {
          out[i] = FORBIDDEN;
          continue;
        }
        info = found;
        if (found.kind === KIND_DIRECT) {
          // A direct conversation named by its id: the sender must be one of its (one or two) members.
          const ids = (found.directMembers ?? []).map((u) => ({ id: this.#userId(s, tenant, u, true), uuid: u }));
          if (!ids.some((r) => r.id === sender)) {
            out[i] = FORBIDDEN;
            continue;
          }
          const peer = ids.find((r) => r.id !== sender);
          if (peer !== undefined) {
            if (full(counters(peer.id))) {
              out[i] = INBOX_FULL;
              continue;
            }
          }
          recipients = peer === undefined ? [{ id: sender, uuid: m.senderId }] : [{ id: sender, uuid: m.senderId }, peer];
        } else {
          let members = groupMembers.get(info.id);
          if (members === undefined) {
            members = this.#members(s, info.id);
            groupMembers.set(info.id, members);
          }
          if (!members.some((r) => r.id === sender)) {
            out[i] = FORBIDDEN;
            continue;
          }
          recipients = members;
        }
      }

      const cc = convCounters(info.id);
      const seq = cc.lastSeq + 1;
      const f = this.#codec.encodeMessage(m);
      eventRows.push(
        info.id,
        seq,
        uuidToBytes(m.id),
        EVENT_MESSAGE,
        sender,
        f.content,
        f.keyId,
        replyToColumn(m.replyTo),
        f.attachments,
        f.mentions,
        f.hashtags,
        f.links,
        m.timestamp,
        m.clientMsgId ?? null,
      );
      cc.lastSeq = seq;
      cc.lastAt = Math.max(cc.lastAt, m.timestamp);
      cc.dirty = true;
      const deliveries: Delivery[] = [];
      for (const r of recipients) {
        const uc = counters(r.id);
        // A group member at the bound is skipped; the sender's own copy is always written.
        if (r.id !== sender && full(uc)) continue;
        uc.last++;
        uc.dirty = true;
        this.#appendTimeline(r.id, uc.last, info.id, seq);
        deliveries.push({ userId: r.uuid, pos: uc.last });
      }
      if (this.#noteWrote(info.id, sender, (wrote ??= new Map()), wroteRows)) wroteBy.push(i);
      const message = this.#codec.storedMessage(m, this.#context(info), seq);
      out[i] = { status: 'stored', message, deliveries };
      if (batchKey !== undefined) (storedKeys ??= new Map()).set(batchKey, message);
    }
    s.insertEventRows.run(eventRows);
    if (wrote !== undefined) {
      for (let i = 0; i < wroteRows.length; i += 2) {
        // Changed a row: the sender had not written there before (the flag never goes back).
        if (this.#f!.setWrote.run(wroteRows[i]!, wroteRows[i + 1]!).changes > 0) (out[wroteBy[i / 2]!] as { firstWrite?: true }).firstWrite = true;
      }
      const known = wrote;
      this.#remember(() => {
        for (const [conv, writers] of known) this.#writers.set(conv, writers);
      });
    }
    const userRows: number[] = [];
    for (const c of users.values()) if (c.dirty) userRows.push(c.id, c.last);
    s.setLastPosRows.run(userRows);
    const convRows: number[] = [];
    for (const [id, c] of convs) if (c.dirty) convRows.push(id, c.lastSeq, c.lastAt);
    s.setConvCounterRows.run(convRows);
    this.#remember(() => {
      if (this.#userCounters.size + users.size > COUNTER_CACHE_LIMIT) this.#userCounters.clear();
      if (this.#convCounters.size + convs.size > COUNTER_CACHE_LIMIT) this.#convCounters.clear();
      for (const c of users.values()) this.#userCounters.set(c.id, { last: c.last, acked: c.acked });
      for (const [id, c] of convs) this.#convCounters.set(id, { lastSeq: c.lastSeq, lastAt: c.lastAt, closed: c.closed });
    });
    return out;
  }

  /**
   * A stored message: its sender has written in the conversation (members.wrote, see Audience).
   * Known writers are cached per conversation (the flag goes back only when a former member is
   * added back, which drops the conversation's entry; another process's writes only make a cached
   * set short, and its UPDATE then changes nothing), so the message
   * path reads and writes members only for a member's first message in a conversation.
   */
  /** True when it added a (conv, sender) row to mark. */
  #noteWrote(conv: number, sender: number, batch: Map<number, Set<number>>, rows: number[]): boolean {
    let writers = batch.get(conv);
    if (writers === undefined) {
      const known = this.#writers.peek(conv);
      if (known !== undefined && known.has(sender)) return false;
      writers = new Set(known ?? this.#f!.writersOf.all(conv));
      batch.set(conv, writers);
    }
    if (writers.has(sender)) return false;
    writers.add(sender);
    rows.push(conv, sender);
    return true;
  }

  /**
   * The members who have written in a conversation (cached once read: see #noteWrote). For reading
   * it must be complete: started over whenever another connection has committed since.
   */
  #writersOf(s: Statements, conv: number): ReadonlySet<number> {
    return this.#writers.read(s.dataVersion.get()!, conv, () => new Set(this.#f!.writersOf.all(conv)));
  }

  #findOrCreateDirect(s: Statements, tenantId: string, a: Recipient, b: Recipient, ts: number): ConvInfo {
    const existing = this.#directId(s, a.id, b.id);
    if (existing !== undefined) return this.#convInfoById(s, existing);
    const uuid = randomUUID();
    const key = directKey(a.id, b.id);
    const id = Number(s.insertConv.run(uuidToBytes(uuid), tenantId, KIND_DIRECT, key, null, null, ts, ts).lastInsertRowid);
    const members = a.id === b.id ? [a] : [a, b].sort((x, y) => x.id - y.id);
    for (const r of members) s.upsertMember.run(id, r.id, ROLE_MEMBER, 1);
    const info: ConvInfo = { id, uuid, tenantId, kind: KIND_DIRECT, directMembers: members.map((r) => r.uuid) };
    this.#cacheConv(info);
    this.#cacheDirect(key, id);
    return info;
  }

  // --- group changes ----------------------------------------------------------------------

  /** The open group and the actor's current membership, or undefined (→ forbidden). */
  #groupFor(
    s: Statements,
    tenantId: string,
    conversationId: string,
    actorId: string,
  ): { info: ConvInfo; state: ConvState; actor: number; role: number; members: MemberRow[] } | undefined {
    const info = this.#conv(s, tenantId, conversationId);
    if (info === undefined || info.kind !== KIND_GROUP) return undefined;
    const state = s.convState.get(info.id)!;
    if (state.closed !== 0) return undefined;
    const actor = this.#userId(s, tenantId, actorId, false);
    if (actor === undefined) return undefined;
    const members = s.currentMembers.all(info.id);
    const me = members.find((r) => r.user === actor);
    if (me === undefined) return undefined;
    return { info, state, actor, role: me.role, members };
  }

  /**
   * Append a membership event at `seq` and one timeline entry per recipient. With `maxInboxSize`,
   * a recipient at the bound whom the event does not name is skipped, as a group message skips
   * them (inbox-bound.ts MembershipBound): no entry, no delivery.
   */
  #appendMembership(
    s: Statements,
    info: ConvInfo,
    seq: number,
    actor: number,
    payload: MembershipPayload,
    timestamp: number,
    recipients: readonly Recipient[],
    maxInboxSize: number | undefined,
    clientMsgId: string | null = null,
  ): GroupChangeOutcome {
    const f = this.#codec.encodeMembership(payload);
    s.insertEvent.run(info.id, seq, uuidToBytes(payload.id), EVENT_MEMBERSHIP, actor, f.content, f.keyId, null, f.attachments, f.mentions, f.hashtags, f.links, timestamp, clientMsgId);
    s.setConvCounters.run(seq, timestamp, info.id);
    const deliveries: Delivery[] = [];
    const named = maxInboxSize === undefined ? undefined : namedByMembership(payload);
    for (const r of recipients) {
      const c = s.userCounters.get(r.id)!;
      if (named !== undefined && !named.has(r.uuid.toLowerCase()) && c.last_pos - c.acked_pos >= maxInboxSize!) {
        const floor = backlogFloor(c.acked_pos, s.firstPos.get(r.id, r.id), c.last_pos);
        if (atInboxBound(c.last_pos, c.acked_pos, maxInboxSize!, floor)) continue;
      }
      const pos = c.last_pos + 1;
      this.#appendTimeline(r.id, pos, info.id, seq);
      s.setLastPos.run(pos, r.id);
      deliveries.push({ userId: r.uuid, pos });
    }
    const event: MembershipEvent = this.#codec.membershipEvent(payload, { tenantId: info.tenantId, conversationId: info.uuid }, seq, timestamp);
    return { status: 'ok', event, deliveries };
  }

  #createGroup(s: Statements, r: CreateGroupRequest, limits: GroupLimits): GroupChangeOutcome {
    if (r.clientMsgId !== undefined) {
      const known = this.#userId(s, r.tenantId, r.actorId, false);
      const first = known === undefined ? undefined : s.findDuplicateRows.all<RawEventRow & { conv: number }>([r.clientMsgId, known])[0];
      if (first !== undefined) return this.#createdBy(s, first);
    }
    if (!isUuid(r.conversationId) || s.convByUuid.get(uuidToBytes(r.conversationId)) !== undefined) return G_FORBIDDEN;
    const others = [...new Set(r.memberIds)].filter((u) => u !== r.actorId);
    if (!others.every(isUuid)) return G_FORBIDDEN;
    if (1 + others.length > limits.maxGroupMembers) return G_TOO_MANY_MEMBERS;
    const actor = this.#userId(s, r.tenantId, r.actorId, true);
    const all: Recipient[] = [{ id: actor, uuid: r.actorId }];
    for (const u of others) all.push({ id: this.#userId(s, r.tenantId, u, true), uuid: u });
    for (const m of all) if ((s.groupCount.get(m.id) ?? 0) + 1 > limits.maxGroupsPerUser) return G_TOO_MANY_GROUPS;
    const uuid = r.conversationId.toLowerCase();
    const sealed = this.#codec.sealName(uuid, r.name);
    const id = Number(s.insertConv.run(uuidToBytes(uuid), r.tenantId, KIND_GROUP, null, sealed.name, sealed.keyId, r.timestamp, r.timestamp).lastInsertRowid);
    for (const m of all) s.upsertMember.run(id, m.id, m.id === actor ? ROLE_OWNER : ROLE_MEMBER, 1);
    const info: ConvInfo = { id, uuid, tenantId: r.tenantId, kind: KIND_GROUP };
    this.#cacheConv(info);
    const payload: MembershipPayload = { id: r.eventId, action: 'created', actorId: r.actorId, userIds: all.map((m) => m.uuid), name: r.name };
    return this.#appendMembership(s, info, 1, actor, payload, r.timestamp, all, undefined, r.clientMsgId ?? null);
  }

  /** A create's key found on an event: the group it created, or forbidden when another operation holds the key. */
  #createdBy(s: Statements, first: RawEventRow & { conv: number }): GroupChangeOutcome {
    const event = first.kind === EVENT_MEMBERSHIP ? this.#codec.decodeDuplicateEvent(toEventRow(first), this.#context(this.#convInfoById(s, first.conv))) : undefined;
    return event?.kind === 'membership' && event.action === 'created' ? { status: 'duplicate', event } : G_FORBIDDEN;
  }

  #addMembers(s: Statements, r: AddMembersRequest, limits: GroupLimits & MembershipBound): GroupChangeOutcome {
    const g = this.#groupFor(s, r.tenantId, r.conversationId, r.actorId);
    if (g === undefined || g.role === ROLE_MEMBER) return G_FORBIDDEN;
    const current = new Set(g.members.map((m) => bytesToUuid(m.user_id)));
    const toAdd = [...new Set(r.userIds)].filter((u) => !current.has(u));
    if (!toAdd.every(isUuid)) return G_FORBIDDEN;
    if (toAdd.length === 0) return G_UNCHANGED;
    if (g.members.length + toAdd.length > limits.maxGroupMembers) return G_TOO_MANY_MEMBERS;
    const added: Recipient[] = toAdd.map((u) => ({ id: this.#userId(s, r.tenantId, u, true), uuid: u }));
    for (const m of added) if ((s.groupCount.get(m.id) ?? 0) + 1 > limits.maxGroupsPerUser) return G_TOO_MANY_GROUPS;
    const seq = g.state.last_seq + 1;
    // A former member added back is a new member: not a writer until they write again (Audience).
    for (const m of added) s.upsertMember.run(g.info.id, m.id, ROLE_MEMBER, seq);
    const conv = g.info.id;
    this.#remember(() => this.#writers.delete(conv));
    const recipients: Recipient[] = [...g.members.map((m) => ({ id: m.user, uuid: bytesToUuid(m.user_id) })), ...added];
    const payload: MembershipPayload = { id: r.eventId, action: 'added', actorId: r.actorId, userIds: toAdd };
    return this.#appendMembership(s, g.info, seq, g.actor, payload, r.timestamp, recipients, limits.maxInboxSize);
  }

  #removeMembers(s: Statements, r: RemoveMembersRequest, bound: MembershipBound): GroupChangeOutcome {
    const g = this.#groupFor(s, r.tenantId, r.conversationId, r.actorId);
    if (g === undefined || g.role === ROLE_MEMBER) return G_FORBIDDEN;
    const wanted = new Set(r.userIds);
    const targets = g.members.filter((m) => wanted.has(bytesToUuid(m.user_id)));
    for (const t of targets) {
      if (t.role === ROLE_OWNER) return G_FORBIDDEN;
      if (g.role === ROLE_ADMIN && t.role === ROLE_ADMIN) return G_FORBIDDEN;
    }
    if (targets.length === 0) return G_UNCHANGED;
    const seq = g.state.last_seq + 1;
    for (const t of targets) s.setLeft.run(seq, g.info.id, t.user);
    const removed = new Set(targets.map((t) => t.user));
    const recipients: Recipient[] = [
      ...g.members.filter((m) => !removed.has(m.user)).map((m) => ({ id: m.user, uuid: bytesToUuid(m.user_id) })),
      ...targets.map((m) => ({ id: m.user, uuid: bytesToUuid(m.user_id) })),
    ];
    const payload: MembershipPayload = { id: r.eventId, action: 'removed', actorId: r.actorId, userIds: targets.map((t) => bytesToUuid(t.user_id)) };
    return this.#appendMembership(s, g.info, seq, g.actor, payload, r.timestamp, recipients, bound.maxInboxSize);
  }

  #leaveGroup(s: Statements, r: LeaveGroupRequest, bound: MembershipBound): GroupChangeOutcome {
    const g = this.#groupFor(s, r.tenantId, r.conversationId, r.actorId);
    if (g === undefined) return G_FORBIDDEN;
    const seq = g.state.last_seq + 1;
    const rest = g.members.filter((m) => m.user !== g.actor);
    const payload: MembershipPayload = { id: r.eventId, action: 'left', actorId: r.actorId, userIds: [r.actorId] };
    s.setLeft.run(seq, g.info.id, g.actor);
    if (rest.length === 0) {
      s.closeConv.run(g.info.id);
    } else if (g.role === ROLE_OWNER) {
      // currentMembers is ordered by (joined_seq, user uuid): the first admin, else the first member.
      const heir = rest.find((m) => m.role === ROLE_ADMIN) ?? rest[0]!;
      s.setRole.run(ROLE_OWNER, g.info.id, heir.user);
      payload.newOwnerId = bytesToUuid(heir.user_id);
    }
    const recipients: Recipient[] = [
      ...rest.map((m) => ({ id: m.user, uuid: bytesToUuid(m.user_id) })),
      { id: g.actor, uuid: r.actorId },
    ];
    return this.#appendMembership(s, g.info, seq, g.actor, payload, r.timestamp, recipients, bound.maxInboxSize);
  }

  #renameGroup(s: Statements, r: RenameGroupRequest, bound: MembershipBound): GroupChangeOutcome {
    const g = this.#groupFor(s, r.tenantId, r.conversationId, r.actorId);
    if (g === undefined || g.role === ROLE_MEMBER) return G_FORBIDDEN;
    const current = this.#codec.currentName(g.info.uuid, g.state.name, g.state.key_id);
    if (current === r.name) return G_UNCHANGED;
    const sealed = this.#codec.sealName(g.info.uuid, r.name);
    s.setConvName.run(sealed.name, sealed.keyId, g.info.id);
    const payload: MembershipPayload = { id: r.eventId, action: 'renamed', actorId: r.actorId, userIds: [], name: r.name };
    const recipients = g.members.map((m) => ({ id: m.user, uuid: bytesToUuid(m.user_id) }));
    return this.#appendMembership(s, g.info, g.state.last_seq + 1, g.actor, payload, r.timestamp, recipients, bound.maxInboxSize);
  }

  #setRole(s: Statements, r: SetRoleRequest, bound: MembershipBound): GroupChangeOutcome {
    const g = this.#groupFor(s, r.tenantId, r.conversationId, r.actorId);
    if (g === undefined || g.role !== ROLE_OWNER) return G_FORBIDDEN;
    const target = g.members.find((m) => bytesToUuid(m.user_id) === r.userId);
    if (target === undefined || target.role === ROLE_OWNER) return G_FORBIDDEN;
    const code = r.role === 'admin' ? ROLE_ADMIN : ROLE_MEMBER;
    if (target.role === code) return G_UNCHANGED;
    s.setRole.run(code, g.info.id, target.user);
    const role: MemberRole = r.role;
    const payload: MembershipPayload = { id: r.eventId, action: 'role_changed', actorId: r.actorId, userIds: [r.userId], role };
    const recipients = g.members.map((m) => ({ id: m.user, uuid: bytesToUuid(m.user_id) }));
    return this.#appendMembership(s, g.info, g.state.last_seq + 1, g.actor, payload, r.timestamp, recipients, bound.maxInboxSize);
  }
}

type TimelineRow = RawEventRow & { pos: number; conv: number };

/** Timeline rows per multi-row INSERT: one statement step for many rows (fewer crossings into SQLite). */
const TIMELINE_ROWS_PER_INSERT = 64;
/** Message events per multi-row INSERT (14 parameters each). */
const EVENT_ROWS_PER_INSERT = 64;
/**
 * One kind of expired events for pruneOlderThan: `collect` puts the keys of up to `limit` of the
 * oldest into temp.prune_keys; `slice` deletes up to `limit` of the oldest (the same ones, in the
 * same order) with their younger edits: [events, edits] deleted.
 */
interface PruneKind {
  collect(s: Statements, limit: number): number;
  slice(s: Statements, limit: number): readonly [number, number];
}

interface PruneSlice {
  timeline: number;
  events: number;
  pass: number;
}

const PRUNE_SLICE: PruneSlice = { timeline: 10_000, events: 5_000, pass: 50_000 };

/** Lets the event loop run (sockets, timers) between two slices of a long job. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

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

/** Statements for receipts, edits and deletes, and presence settings (schema 3), apart from the message path's. */
function prepareFeatures(db: BetterSqlite3.Database, eventColumns: string) {
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

type FeatureStatements = ReturnType<typeof prepareFeatures>;

/** Names per transaction of the start-up pass below. */
const RESEAL_SLICE = 1000;

/**
 * Group names sealed with another key than the active one (or stored clear before encryption was
 * turned on) are sealed again under it, at start-up, a slice per transaction. Names that cannot be
 * opened — their key is no longer in the keyring, the bytes under its id are wrong, or the name was
 * damaged — are left as they are (listing them fails until the key is put right, or a rename
 * overwrites the name); they never stop the store from starting.
 */
function resealGroupNames(db: BetterSqlite3.Database, codec: EventCodec): void {
  const active = codec.activeKeyId;
  if (active === undefined) return;
  const page = db.prepare<[string, number, number], { id: number; uuid: Buffer; name: string; key_id: string | null }>(
    'SELECT id, uuid, name, key_id FROM conversations WHERE name IS NOT NULL AND (key_id IS NULL OR key_id <> ?) AND id > ? ORDER BY id LIMIT ?',
  );
  const update = db.prepare<[string, string | null, number]>('UPDATE conversations SET name = ?, key_id = ? WHERE id = ?');
  const slice = db.transaction((after: number): number | undefined => {
    const rows = page.all(active, after, RESEAL_SLICE);
    for (const row of rows) {
      let sealed;
      try {
        sealed = codec.resealName(bytesToUuid(row.uuid), row.name, row.key_id);
      } catch (err) {
        if (isKeyError(err)) continue;
        throw err;
      }
      if (sealed !== undefined) update.run(sealed.name, sealed.keyId, row.id);
    }
    return rows.length < RESEAL_SLICE ? undefined : rows[rows.length - 1]!.id;
  });
  // BEGIN IMMEDIATE, as every write here: another process writing the file meanwhile is waited for.
  for (let after: number | undefined = 0; after !== undefined; ) after = slice.immediate(after);
}

function migrate(db: BetterSqlite3.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const run = db.transaction(() => {
    const current = db.prepare<[], number>('SELECT coalesce(max(version), 0) FROM schema_version').pluck().get() ?? 0;
    if (current > MIGRATIONS.length) {
      throw new Error(`SQLite schema version ${current} is newer than this build supports (${MIGRATIONS.length})`);
    }
    const record = db.prepare<[number, number]>('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)');
    for (let v = current; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v]!);
      record.run(v + 1, Date.now());
    }
  });
  run.immediate();
}
