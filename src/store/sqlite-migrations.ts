/**
 * The SQLite schema: its migrations in order and the runner that applies them when the store opens,
 * then the start-up pass that re-seals group names under the active key. Shipped migration text
 * is pinned (store-migration-append-only.test.ts): never edit an entry, append a new one.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { isKeyError } from './content-cipher.js';
import type { EventCodec } from './message-codec.js';
import { bytesToUuid } from './uuid-bytes.js';

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

/** The schema migrations in order (exported for the upgrade tests; never edit a shipped entry). */
export const SQLITE_MIGRATIONS: readonly string[] = MIGRATIONS;

/** Names per transaction of the start-up pass below. */
const RESEAL_SLICE = 1000;

/**
 * Group names sealed with another key than the active one (or stored clear before encryption was
 * turned on) are sealed again under it, at start-up, a slice per transaction. Names that cannot be
 * opened — their key is no longer in the keyring, the bytes under its id are wrong, or the name was
 * damaged — are left as they are (listing them fails until the key is put right, or a rename
 * overwrites the name); they never stop the store from starting.
 */
export function resealGroupNames(db: BetterSqlite3.Database, codec: EventCodec): void {
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

/** Applies the migrations the file has not had yet, in one BEGIN IMMEDIATE transaction. */
export function migrate(db: BetterSqlite3.Database): void {
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
