/**
 * The clustered Store: PostgreSQL through a pg Pool (storage v2). Several nodes share one database,
 * so every rule that must hold across nodes is enforced inside the write transaction under row
 * locks, always taken in one global order — the conversations of the batch (ORDER BY id FOR
 * UPDATE), then its users (ORDER BY id FOR UPDATE) — so two nodes' batches never deadlock. An
 * edit or delete takes its message's row before those (a retention prune holding it must not
 * keep the members' user locks, and so every sender's batch, waiting behind it); the prune
 * takes only event rows no writer holds (SKIP LOCKED), messages before their edits. Users
 * and conversations are created with INSERT … ON CONFLICT DO NOTHING and read back. Statements are
 * named (prepared once per connection); multi-row writes pass one array per column through
 * unnest(), so a batch of any size is a fixed number of round trips.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { isKeyError, type ContentCipher } from './content-cipher.js';
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
  roleCode,
  roleName,
  type EventContext,
} from './message-codec.js';
import { EVENT_COLUMNS, eventContext, eventJoins, type PgEventRow } from './pg-event-sql.js';
import { buildFeatureSql } from './pg-features-sql.js';
import { MIGRATIONS } from './pg-migrations.js';
import { inTransaction, NO_QUERY_TIMEOUT, withQueryTimeout } from './pg-transaction.js';
import { decodeListCursor, encodeListCursor } from './list-cursor.js';
import { atInboxBound, backlogFloor, namedByMembership, type MembershipBound } from './inbox-bound.js';
import { isRefusedChange, RefusedChange } from './refused-change.js';
import { asSeenByFormerMember, editedMessages, formerMemberPage, seenUntil, type MembershipPeriod } from './former-member-view.js';
import { MAX_DEVICES_PER_USER } from './store.js';
import type {
  AddMembersRequest,
  Audience,
  PrivacyOption,
  AppendOptions,
  AppendOutcome,
  ConversationEvent,
  MessageEditEvent,
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
  MembershipEvent,
  NewMessage,
  RemoveMembersRequest,
  RenameGroupRequest,
  SetRoleRequest,
  Store,
  StoredMessage,
  SyncState,
  TimelineEntry,
  TimelinePage,
  AckResult,
  ConversationReceipts,
  DeleteMessageRequest,
  EditMessageRequest,
  MemberReceipt,
  MessageChangeEvent,
  MessageChangeOptions,
  MessageChangeOutcome,
  ReadResult,
} from './store.js';

export interface PostgresStoreOptions extends PrivacyOption {
  /**
   * PostgreSQL schema that holds the tables (created if missing). Lets tests and tenants run
   * isolated in one database. Lower-case identifier; default `public`.
   */
  schema?: string;
  /** Seal user-written fields at rest. */
  cipher?: ContentCipher;
  /** Extra pool settings (size, timeouts, TLS). The connection string comes from the constructor. */
  pool?: Omit<pg.PoolConfig, 'connectionString'>;
  /**
   * An idle pooled connection failed (e.g. PostgreSQL restarted). The pool drops it and the next
   * query reports any lasting outage, so the default ignores it; without a listener, pg's error
   * event would crash the process.
   */
  onPoolError?: (err: Error) => void;
  /** Entries each id cache (users, direct pairs, conversations) holds before it starts over. Default 100 000. */
  idCacheLimit?: number;
}

export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/** Pool defaults; the same parameters in the URL (`?statement_timeout=MS`) override them. */
const POOL_DEFAULTS: pg.PoolConfig = {
  // pg's default is to wait forever for a connection; a store must fail visibly instead.
  connectionTimeoutMillis: 10_000,
  // A statement or lock wait that hangs fails its batch (senders get storage_unavailable)
  // instead of stalling every sender of this node behind the one transaction in flight.
  statement_timeout: 30_000,
  // A transaction its client abandoned must not hold counter locks for long.
  idle_in_transaction_session_timeout: 60_000,
  // A connection that died silently (no reset reached us) is found by TCP keepalive probes rather
  // than left holding the batch in flight until the OS gives up on it.
  keepAlive: true,
  keepAliveInitialDelayMillis: 10_000,
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Entries each id cache may hold before it starts over (ids never change; this only bounds memory). */
const CACHE_LIMIT = 100_000;

const INBOX_FULL: AppendOutcome = Object.freeze({ status: 'inbox_full' });
const FORBIDDEN_APPEND: AppendOutcome = Object.freeze({ status: 'forbidden' });
const M_FORBIDDEN: MessageChangeOutcome = Object.freeze({ status: 'forbidden' });
const FORBIDDEN: GroupChangeOutcome = Object.freeze({ status: 'forbidden' });
const UNCHANGED: GroupChangeOutcome = Object.freeze({ status: 'unchanged' });
const TOO_MANY_MEMBERS: GroupChangeOutcome = Object.freeze({ status: 'too_many_members' });
const TOO_MANY_GROUPS: GroupChangeOutcome = Object.freeze({ status: 'too_many_groups' });

function buildSql(t: (table: string) => string) {
  const joins = eventJoins(t);
  return {
    findUsers: `
      SELECT x.id, x.tenant_id, x.user_id FROM ${t('users')} x
      JOIN unnest($1::text[], $2::uuid[]) AS k(t, u) ON x.tenant_id = k.t AND x.user_id = k.u`,
    // Sorted, so two transactions creating the same users wait on each other in one order.
    insertUsers: `
      INSERT INTO ${t('users')} (tenant_id, user_id)
      SELECT t, u FROM unnest($1::text[], $2::uuid[]) AS k(t, u) ORDER BY t, u
      ON CONFLICT DO NOTHING RETURNING id, tenant_id, user_id`,
    findDirect: `SELECT id, uuid, direct_key FROM ${t('conversations')} WHERE direct_key = ANY($1::text[])`,
    insertDirect: `
      WITH c AS (
        INSERT INTO ${t('conversations')} (uuid, tenant_id, kind, direct_key, last_seq, last_at, closed, created_at)
        SELECT u, t, ${KIND_DIRECT}, k, 0, ts, false, ts
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[]) AS x(u, t, k, ts) ORDER BY k
        ON CONFLICT (direct_key) DO NOTHING RETURNING id, uuid, direct_key
      ), m AS (
        INSERT INTO ${t('members')} (conv, "user", role, joined_seq)
        SELECT c.id, p.u, ${ROLE_MEMBER}, 1 FROM c CROSS JOIN LATERAL (
          SELECT split_part(c.direct_key, ':', 1)::int UNION SELECT split_part(c.direct_key, ':', 2)::int
        ) AS p(u)
      )
      SELECT id, uuid, direct_key FROM c`,
    /** Each user's oldest timeline position still stored (users with none are left out). */
    firstPositions: `
      SELECT "user", min(pos) AS first_pos FROM ${t('timeline')} WHERE "user" = ANY($1::int[]) GROUP BY "user"`,
    /** Direct conversations this transaction created and left empty (with their two members). */
    dropDirects: `
      WITH m AS (DELETE FROM ${t('members')} WHERE conv = ANY($1::int[]))
      DELETE FROM ${t('conversations')} WHERE id = ANY($1::int[])`,
    // Any kind: a message may name a direct conversation by its id too.
    findConversations: `
      SELECT id, tenant_id, uuid, kind FROM ${t('conversations')} WHERE uuid = ANY($1::uuid[])`,
    lockConversations: `
      SELECT id, last_seq, closed FROM ${t('conversations')} WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE`,
    /**
     * Of these (conversation, user) pairs, the current memberships — read without a lock, before
     * any is taken: a stranger's frame must neither wait on a conversation's writers (its answer
     * time would tell how busy it is) nor hold its locks. Checked again under the locks.
     */
    currentPairs: `
      SELECT m.conv, m."user" FROM ${t('members')} m
      JOIN unnest($1::int[], $2::int[]) AS p(conv, uid) ON m.conv = p.conv AND m."user" = p.uid
      WHERE m.left_seq IS NULL`,
    /** Whether the user is a current member of the tenant's conversation (no lock; see currentPairs). */
    isCurrentMember: `
      SELECT 1 FROM ${t('conversations')} c
      JOIN ${t('members')} m ON m.conv = c.id AND m.left_seq IS NULL
      JOIN ${t('users')} u ON u.id = m."user"
      WHERE c.uuid = $1 AND c.tenant_id = $2 AND u.tenant_id = $2 AND u.user_id = $3`,
    lockGroup: `
      SELECT id, last_seq, closed, name, key_id FROM ${t('conversations')}
      WHERE uuid = $1 AND tenant_id = $2 AND kind = ${KIND_GROUP} FOR UPDATE`,
    currentMembers: `
      SELECT m.conv, m."user" AS uid, u.user_id AS uuid, m.role, m.joined_seq FROM ${t('members')} m
      JOIN ${t('users')} u ON u.id = m."user"
      WHERE m.conv = ANY($1::int[]) AND m.left_seq IS NULL`,
    lockUsers: `
      SELECT id, last_pos, acked_pos FROM ${t('users')} WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE`,
    groupCounts: `
      SELECT m."user" AS uid, count(*)::int AS n FROM ${t('members')} m
      JOIN ${t('conversations')} c ON c.id = m.conv
      WHERE m."user" = ANY($1::int[]) AND m.left_seq IS NULL AND c.kind = ${KIND_GROUP}
      GROUP BY m."user"`,
    findDuplicates: `
      SELECT ${EVENT_COLUMNS}, e.sender AS sender_int FROM ${t('events')} e
      JOIN unnest($1::int[], $2::text[]) AS k(s, c) ON e.sender = k.s AND e.client_msg_id = k.c
      ${joins}`,
    insertGroup: `
      INSERT INTO ${t('conversations')} (uuid, tenant_id, kind, name, key_id, last_seq, last_at, closed, created_at)
      VALUES ($1, $2, ${KIND_GROUP}, $3, $4, 0, $5, false, $5)
      ON CONFLICT DO NOTHING RETURNING id`,
    updateGroup: `UPDATE ${t('conversations')} SET name = $2, key_id = $3, closed = $4 WHERE id = $1`,
    // Every write of a batch in one round trip: events, timeline entries, counters (each once),
    // membership rows. Data-modifying CTEs all run whether or not the final SELECT reads them.
    write: `
      WITH ev AS (
        INSERT INTO ${t('events')} (conv, seq, id, kind, sender, content, key_id, reply_to, attachments, mentions,
          hashtags, links, ts, client_msg_id)
        SELECT * FROM unnest($1::int[], $2::bigint[], $3::uuid[], $4::smallint[], $5::int[], $6::text[], $7::text[],
          $8::uuid[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::text[])
      ), tl AS (
        INSERT INTO ${t('timeline')} ("user", pos, conv, seq)
        SELECT * FROM unnest($15::int[], $16::bigint[], $17::int[], $18::bigint[])
      ), cv AS (
        UPDATE ${t('conversations')} c SET last_seq = x.s, last_at = greatest(c.last_at, x.a)
        FROM unnest($19::int[], $20::bigint[], $21::bigint[]) AS x(id, s, a) WHERE c.id = x.id
      ), us AS (
        UPDATE ${t('users')} u SET last_pos = x.p FROM unnest($22::int[], $23::bigint[]) AS x(id, p) WHERE u.id = x.id
      ), mb AS (
        INSERT INTO ${t('members')} AS old (conv, "user", role, joined_seq, left_seq)
        SELECT * FROM unnest($24::int[], $25::int[], $26::smallint[], $27::bigint[], $28::bigint[])
        ON CONFLICT (conv, "user") DO UPDATE
          SET role = excluded.role, joined_seq = excluded.joined_seq, left_seq = excluded.left_seq,
            -- a former member added back is a new member: not a writer until they write again (Audience)
            wrote = old.wrote AND NOT (old.left_seq IS NOT NULL AND excluded.left_seq IS NULL)
      ), wr AS (
        UPDATE ${t('members')} m SET wrote = true FROM unnest($29::int[], $30::int[]) AS x(conv, u)
        WHERE m.conv = x.conv AND m."user" = x.u AND NOT m.wrote
      )
      SELECT 1`,
    userState: `
      SELECT u.id, u.last_pos, u.acked_pos, (SELECT min(pos) FROM ${t('timeline')} WHERE "user" = u.id) AS first_pos
      FROM ${t('users')} u WHERE u.tenant_id = $1 AND u.user_id = $2`,
    timeline: `
      SELECT t.pos, t.conv AS tl_conv, ${EVENT_COLUMNS} FROM ${t('timeline')} t
      JOIN ${t('events')} e ON e.conv = t.conv AND e.seq = t.seq
      ${joins}
      WHERE t."user" = $1 AND t.pos > $2 AND t.pos <= $3 ORDER BY t.pos LIMIT $4`,
    syncState: `
      SELECT u.last_pos, u.acked_pos, d.acked_pos AS device_pos FROM ${t('users')} u
      LEFT JOIN ${t('devices')} d ON d."user" = u.id AND d.device_id = $3
      WHERE u.tenant_id = $1 AND u.user_id = $2`,
    ackUser: `
      UPDATE ${t('users')} SET acked_pos = GREATEST(acked_pos, LEAST($3::bigint, last_pos))
      WHERE tenant_id = $1 AND user_id = $2 RETURNING acked_pos`,
    // One statement: the device row and the user's position move together.
    ackDevice: `
      WITH u AS (
        UPDATE ${t('users')} SET acked_pos = GREATEST(acked_pos, LEAST($3::bigint, last_pos))
        WHERE tenant_id = $1 AND user_id = $2 RETURNING id, GREATEST(0, LEAST($3::bigint, last_pos)) AS p
      ), d AS (
        INSERT INTO ${t('devices')} AS d ("user", device_id, acked_pos) SELECT id, $4, p FROM u
        ON CONFLICT ("user", device_id) DO UPDATE SET acked_pos = GREATEST(d.acked_pos, excluded.acked_pos)
        RETURNING acked_pos, xmax = 0 AS inserted
      ), trimmed AS (
        -- As upsertDevice (pg-features-sql.ts): a new row past the bound $5 drops the least-advanced others.
        DELETE FROM ${t('devices')} x WHERE (SELECT inserted FROM d) AND x."user" = (SELECT id FROM u) AND x.device_id IN (
          SELECT device_id FROM ${t('devices')} WHERE "user" = (SELECT id FROM u) AND device_id <> $4
          ORDER BY acked_pos DESC, device_id COLLATE "C" OFFSET $5::int - 1)
      )
      SELECT acked_pos FROM d`,
    memberOf: `
      SELECT c.id, c.uuid, c.kind, m.joined_seq, m.left_seq FROM ${t('conversations')} c
      JOIN ${t('members')} m ON m.conv = c.id
      JOIN ${t('users')} u ON u.id = m."user"
      WHERE c.uuid = $1 AND c.tenant_id = $2 AND u.tenant_id = $2 AND u.user_id = $3`,
    directOf: `
      SELECT c.id, c.uuid, c.kind, 1::bigint AS joined_seq, NULL::bigint AS left_seq FROM ${t('conversations')} c
      WHERE c.direct_key = (
        SELECT least(a.id, b.id) || ':' || greatest(a.id, b.id) FROM ${t('users')} a, ${t('users')} b
        WHERE a.tenant_id = $1 AND a.user_id = $2 AND b.tenant_id = $1 AND b.user_id = $3)`,
    history: `
      SELECT ${EVENT_COLUMNS} FROM ${t('events')} e ${joins}
      WHERE e.conv = $1 AND e.seq >= $2 AND e.seq <= $3 AND e.seq < $4 AND e.kind NOT IN (${EVENT_EDIT}, ${EVENT_DELETE}) ORDER BY e.seq DESC LIMIT $5`,
    // A cursor outside this conversation yields NULL, and `seq < NULL` matches nothing.
    historyBeforeId: `
      SELECT ${EVENT_COLUMNS} FROM ${t('events')} e ${joins}
      WHERE e.conv = $1 AND e.seq >= $2 AND e.seq <= $3 AND e.kind NOT IN (${EVENT_EDIT}, ${EVENT_DELETE})
        AND e.seq < (SELECT seq FROM ${t('events')} WHERE id = $4 AND conv = $1) AND e.seq < $6
      ORDER BY e.seq DESC LIMIT $5`,
    // A conversation's current members if $3 is one, and whether each wrote in it (Audience).
    // (With each member's receipt positions, floored at joined_seq - 1 as in receipts(): audienceOf
    // returns the asking member's.)
    members: `
      SELECT mu.user_id, m.wrote, GREATEST(m.delivered_seq, m.joined_seq - 1) AS delivered_seq,
        GREATEST(m.receipt_seq, m.joined_seq - 1) AS receipt_seq FROM ${t('conversations')} c
      JOIN ${t('members')} m ON m.conv = c.id AND m.left_seq IS NULL
      JOIN ${t('users')} mu ON mu.id = m."user"
      WHERE c.uuid = $1 AND c.tenant_id = $2
        AND EXISTS (SELECT 1 FROM ${t('members')} me JOIN ${t('users')} u ON u.id = me."user"
          WHERE me.conv = c.id AND (me.left_seq IS NULL OR $4::boolean) AND u.tenant_id = $2 AND u.user_id = $3)
      ORDER BY m.joined_seq, mu.user_id`,
    // Current memberships, most recent activity first; the cursor is (last_at, uuid) of the last row.
    listConversations: `
      SELECT c.id, c.uuid, c.kind, c.name, c.key_id, c.last_seq, c.last_at, m.role, m.read_seq, m.joined_seq,
        (SELECT count(*) FROM ${t('members')} x WHERE x.conv = c.id AND x.left_seq IS NULL)::int AS member_count,
        (SELECT pu.user_id FROM ${t('members')} p JOIN ${t('users')} pu ON pu.id = p."user"
          WHERE c.kind = ${KIND_DIRECT} AND p.conv = c.id ORDER BY (p."user" = m."user") LIMIT 1) AS peer_uuid,
        (SELECT count(*) FROM ${t('events')} e WHERE e.conv = c.id AND e.kind = ${EVENT_MESSAGE}
          AND e.sender <> m."user" AND e.seq > m.read_seq AND e.seq >= m.joined_seq)::int AS unread
      FROM ${t('users')} u
      JOIN ${t('members')} m ON m."user" = u.id AND m.left_seq IS NULL
      JOIN ${t('conversations')} c ON c.id = m.conv
      WHERE u.tenant_id = $1 AND u.user_id = $2
        AND ($3::bigint IS NULL OR c.last_at < $3 OR (c.last_at = $3 AND c.uuid < $4::uuid))
      ORDER BY c.last_at DESC, c.uuid DESC
      LIMIT $5`,
    lastMessages: `
      SELECT ${EVENT_COLUMNS} FROM unnest($1::int[], $2::bigint[]) AS k(conv, since)
      CROSS JOIN LATERAL (
        SELECT * FROM ${t('events')} ev WHERE ev.conv = k.conv AND ev.kind IN (${EVENT_MESSAGE}, ${EVENT_TOMBSTONE}) AND ev.seq >= k.since
        ORDER BY ev.seq DESC LIMIT 1
      ) e
      ${joins}`,
    markRead: `
      UPDATE ${t('members')} m SET read_seq = GREATEST(m.read_seq, LEAST($4::bigint, c.last_seq))
      FROM ${t('conversations')} c, ${t('users')} u
      WHERE c.uuid = $3 AND c.tenant_id = $1 AND u.tenant_id = $1 AND u.user_id = $2
        AND m.conv = c.id AND m."user" = u.id AND m.left_seq IS NULL
      RETURNING m.read_seq`,
    // By the UUIDv7 id (time-ordered): no timestamp index needed ($1: the UUIDv7 floor of $2, the
    // time retention keeps from). Except for messages upgraded from storage v1 with a random
    // (version 4) id: those by their time (ts, through version 10's partial index events_legacy_ts),
    // first — no event of a v2 node has such an id, and their edits do (UUIDv7), so a message is
    // still locked before its edits. A UUIDv7 test on both sides: a young v1 message whose random
    // id happens to sort below $1 is kept. The edits of a pruned message go with it (an edit
    // carries the changed text), younger or not; the older ones are in d.
    prune: `
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
      SELECT ((SELECT count(*) FROM d) + (SELECT count(*) FROM x))::int AS n`,
  };
}

type SqlName = keyof ReturnType<typeof buildSql>;
type FeatureSqlName = keyof ReturnType<typeof buildFeatureSql>;

/** PostgreSQL text cannot hold U+0000: one such value would fail the whole batch, so replace it. */
function pgText(value: string): string {
  return value.indexOf('\u0000') === -1 ? value : value.replaceAll('\u0000', '\uFFFD');
}

/** Map key of a (tenant, user) pair, or (sender, clientMsgId). */
function key(...parts: (string | number)[]): string {
  return parts.join('\u0000');
}

function isUuid(value: string): boolean {
  return UUID.test(value);
}

/** The lower bound of UUIDv7 ids minted at `ms`: every id below it was minted earlier. */
function uuidv7Floor(ms: number): string {
  const clamped = Math.max(0, Math.min(Math.floor(ms), 0xffffffffffff));
  const hex = clamped.toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-0000-0000-000000000000`;
}

/** One write transaction, with the ids it created (cached only once it committed). */
interface Tx {
  client: pg.PoolClient;
  newUsers: Map<string, number>;
  newDirects: Map<string, DirectConversation>;
  /** Members marked as having written (`conv user`). */
  newWriters: Set<string>;
}

interface DirectConversation {
  id: number;
  uuid: string;
}

interface LockedUser {
  lastPos: number;
  ackedPos: number;
  /** Where the backlog starts (inbox-bound.ts): set by #readBacklogFloors for users at the bound. */
  floor?: number;
}

interface CurrentMember {
  uid: number;
  uuid: string;
  role: number;
  joinedSeq: number;
}

/** The rows one write adds, column by column (the `write` statement's parameters). */
/** Entries the writers and direct-pair caches may each hold before they start over (bounds memory only). */
const WRITERS_CACHE_LIMIT = 100_000;

class WriteSet {
  readonly ev = {
    conv: [] as number[],
    seq: [] as number[],
    id: [] as string[],
    kind: [] as number[],
    sender: [] as number[],
    content: [] as string[],
    keyId: [] as (string | null)[],
    replyTo: [] as (string | null)[],
    attachments: [] as (string | null)[],
    mentions: [] as string[],
    hashtags: [] as string[],
    links: [] as string[],
    ts: [] as number[],
    clientMsgId: [] as (string | null)[],
  };
  readonly tl = { user: [] as number[], pos: [] as number[], conv: [] as number[], seq: [] as number[] };
  readonly convs = new Map<number, { seq: number; at: number }>();
  readonly users = new Map<number, number>();
  readonly mb = { conv: [] as number[], user: [] as number[], role: [] as number[], joined: [] as number[], left: [] as (number | null)[] };
  /** Members who wrote in this batch, as `conv user` keys (members.wrote, see Audience). */
  readonly wrote = new Set<string>();

  get empty(): boolean {
    return this.ev.id.length === 0 && this.mb.conv.length === 0;
  }

  timeline(user: number, pos: number, conv: number, seq: number): void {
    this.tl.user.push(user);
    this.tl.pos.push(pos);
    this.tl.conv.push(conv);
    this.tl.seq.push(seq);
    this.users.set(user, pos);
  }

  member(conv: number, user: number, role: number, joinedSeq: number, leftSeq: number | null): void {
    this.mb.conv.push(conv);
    this.mb.user.push(user);
    this.mb.role.push(role);
    this.mb.joined.push(joinedSeq);
    this.mb.left.push(leftSeq);
  }

  values(): unknown[] {
    const e = this.ev;
    const convIds = [...this.convs.keys()];
    const userIds = [...this.users.keys()];
    return [
      e.conv, e.seq, e.id, e.kind, e.sender, e.content, e.keyId, e.replyTo, e.attachments, e.mentions, e.hashtags, e.links,
      e.ts, e.clientMsgId,
      this.tl.user, this.tl.pos, this.tl.conv, this.tl.seq,
      convIds, convIds.map((id) => this.convs.get(id)!.seq), convIds.map((id) => this.convs.get(id)!.at),
      userIds, userIds.map((id) => this.users.get(id)!),
      this.mb.conv, this.mb.user, this.mb.role, this.mb.joined, this.mb.left,
      [...this.wrote].map((k) => Number(k.split(' ')[0])), [...this.wrote].map((k) => Number(k.split(' ')[1])),
    ];
  }
}

export class PostgresStore implements Store {
  readonly #pool: pg.Pool;
  readonly #schema: string;
  readonly #codec: EventCodec;
  /** See store.ts Audience. */
  readonly #strangerPrivacy: boolean;
  readonly #maxDevices: number;
  readonly #sql: Record<SqlName, pg.QueryConfig>;
  readonly #fsql: Record<FeatureSqlName, pg.QueryConfig>;
  readonly #t: (table: string) => string;
  /** (tenant, user uuid) → users.id, committed rows only. */
  readonly #idCacheLimit: number;
  readonly #userIds = new Map<string, number>();
  /** direct_key → conversation, committed rows only. */
  readonly #directs = new Map<string, DirectConversation>();
  /**
   * Members known (committed) to have written in a conversation, `conv user` (a group's: `conv
   * user joinedSeq`): their next messages skip the members update. Never stale in a harmful way:
   * the flag goes back only when a former member is added back, with a new joinedSeq, so a key
   * any node cached from the earlier membership no longer matches.
   */
  readonly #writers = new Set<string>();
  /** (tenant, two user uuids in order) → their direct conversation, once found (directConversationId). */
  readonly #directByPair = new Map<string, string>();
  /** (tenant, conversation uuid) → conversations.id and kind, committed rows only. */
  readonly #convIds = new Map<string, { id: number; kind: number }>();
  #initialized = false;
  #closed = false;

  constructor(connectionString: string, options: PostgresStoreOptions = {}) {
    const schema = options.schema ?? 'public';
    if (!SCHEMA_NAME.test(schema)) throw new Error(`PostgreSQL schema "${schema}" must match ${SCHEMA_NAME.source}`);
    this.#schema = schema;
    this.#t = (table) => `"${schema}".${table}`;
    // PostgreSQL membership payloads have always named the actor `actor`.
    this.#codec = new EventCodec(options.cipher, { membershipActorKey: 'actor' });
    this.#strangerPrivacy = options.strangerPrivacy !== false;
    this.#idCacheLimit = options.idCacheLimit ?? CACHE_LIMIT;
    this.#maxDevices = options.maxDevicesPerUser ?? MAX_DEVICES_PER_USER;
    const texts = buildSql(this.#t);
    // Statement names are per connection: include the schema so two stores may share a server.
    this.#sql = Object.fromEntries(
      Object.entries(texts).map(([name, text]) => [name, { name: `rampart2_${schema}_${name}`, text }]),
    ) as Record<SqlName, pg.QueryConfig>;
    this.#fsql = Object.fromEntries(
      Object.entries(buildFeatureSql(this.#t)).map(([name, text]) => [name, { name: `rampart3_${schema}_${name}`, text }]),
    ) as Record<FeatureSqlName, pg.QueryConfig>;
    this.#pool = new pg.Pool(withQueryTimeout({ ...POOL_DEFAULTS, ...options.pool, connectionString }));
    this.#pool.on('error', options.onPoolError ?? (() => {}));
  }

  async init(): Promise<void> {
    this.#open();
    if (this.#initialized) return;
    await this.#transaction(async ({ client }) => {
      // Two nodes starting together: the second waits here, then sees the first one's migrations.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`rampart.migrate.${this.#schema}`]);
      if (this.#schema !== 'public') await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.#schema}"`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${this.#t('schema_version')} (
           version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
      );
      const { rows } = await client.query<{ v: number }>(
        `SELECT coalesce(max(version), 0)::int AS v FROM ${this.#t('schema_version')}`,
      );
      const current = rows[0]?.v ?? 0;
      if (current > MIGRATIONS.length) {
        throw new Error(`PostgreSQL schema version ${current} is newer than this build supports (${MIGRATIONS.length})`);
      }
      if (current < MIGRATIONS.length) {
        // Migrating a large v1 table may take a while: not bound by statement_timeout.
        await client.query('SET LOCAL statement_timeout = 0');
      }
      for (let v = current; v < MIGRATIONS.length; v++) {
        await client.query({ text: MIGRATIONS[v]!(this.#t), ...NO_QUERY_TIMEOUT });
        await client.query(`INSERT INTO ${this.#t('schema_version')} (version) VALUES ($1)`, [v + 1]);
      }
    });
    await this.#resealGroupNames();
    this.#initialized = true;
  }

  /**
   * Group names sealed with another key than the active one (or stored clear before encryption was
   * turned on) are sealed again under it, at start-up, a slice per transaction; a name never ages
   * out the way events do. Rows locked, so a rename or another node's pass waits; names that cannot
   * be opened (their key is no longer in the keyring, the bytes under its id are wrong, or the name
   * was damaged) are left as they are and never stop the store from starting.
   */
  async #resealGroupNames(): Promise<void> {
    const active = this.#codec.activeKeyId;
    if (active === undefined) return;
    const SLICE = 1000;
    for (let after: number | undefined = 0; after !== undefined; ) {
      const from: number = after;
      after = await this.#transaction(async ({ client }) => {
        const { rows } = await client.query<{ id: number; uuid: string; name: string; key_id: string | null }>(
          `SELECT id, uuid, name, key_id FROM ${this.#t('conversations')}
            WHERE name IS NOT NULL AND (key_id IS NULL OR key_id <> $1) AND id > $2 ORDER BY id LIMIT $3 FOR UPDATE`,
          [active, from, SLICE],
        );
        for (const row of rows) {
          let sealed;
          try {
            sealed = this.#codec.resealName(row.uuid, row.name, row.key_id);
          } catch (err) {
            if (isKeyError(err)) continue;
            throw err;
          }
          if (sealed !== undefined) await client.query(`UPDATE ${this.#t('conversations')} SET name = $1, key_id = $2 WHERE id = $3`, [sealed.name, sealed.keyId, row.id]);
        }
        return rows.length < SLICE ? undefined : rows[rows.length - 1]!.id;
      });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Messages

  async appendMessages(batch: readonly NewMessage[], options: AppendOptions): Promise<AppendOutcome[]> {
    this.#ready();
    if (batch.length === 0) return [];
    for (const m of batch) {
      if (!isUuid(m.id) || !isUuid(m.senderId)) throw new Error(`message ${m.id}: id and senderId must be UUIDs`);
      if ('peerId' in m.to && !isUuid(m.to.peerId)) throw new Error(`message ${m.id}: peerId must be a UUID`);
      if (m.replyTo !== undefined && !isUuid(m.replyTo)) throw new Error(`message ${m.id}: replyTo must be a UUID`);
    }
    return this.#transaction((tx) => this.#appendBatch(tx, batch, options.maxInboxSize));
  }

  async #appendBatch(tx: Tx, batch: readonly NewMessage[], maxInboxSize: number): Promise<AppendOutcome[]> {
    const { client } = tx;
    const out = new Array<AppendOutcome | undefined>(batch.length);

    // 1. Users (created on demand) and conversations: direct ones found or created by the pair.
    const wanted: [string, string][] = [];
    for (const m of batch) {
      wanted.push([m.tenantId, m.senderId]);
      if ('peerId' in m.to) wanted.push([m.tenantId, m.to.peerId]);
    }
    const userIds = await this.#resolveUsers(tx, wanted);
    const uid = (tenant: string, uuid: string): number => userIds.get(key(tenant, uuid.toLowerCase()))!;
    const uuidOf = new Map<number, string>();
    for (const [tenant, uuid] of wanted) uuidOf.set(uid(tenant, uuid), uuid.toLowerCase());

    const directWanted = new Map<string, { tenant: string; at: number }>();
    for (const m of batch) {
      if (!('peerId' in m.to)) continue;
      const k = directKey(uid(m.tenantId, m.senderId), uid(m.tenantId, m.to.peerId));
      if (!directWanted.has(k)) directWanted.set(k, { tenant: m.tenantId, at: m.timestamp });
    }
    const directs = await this.#resolveDirects(tx, directWanted);
    // Conversations named by id (groups, and direct ones named by id): key(tenant, uuid) → id and
    // kind. A conversation's id, tenant and kind never change: committed rows are cached.
    const groups = new Map<string, { id: number; kind: number }>();
    const unknownGroups: string[] = [];
    for (const m of batch) {
      if (!('conversationId' in m.to) || !isUuid(m.to.conversationId)) continue;
      const k = key(m.tenantId, m.to.conversationId.toLowerCase());
      const c = this.#convIds.get(k);
      if (c !== undefined) groups.set(k, c);
      else unknownGroups.push(m.to.conversationId.toLowerCase());
    }
    if (unknownGroups.length > 0) {
      const { rows } = await client.query<{ id: number; tenant_id: string; uuid: string; kind: number }>({
        ...this.#sql.findConversations,
        values: [[...new Set(unknownGroups)]],
      });
      const createdHere = new Set<number>();
      for (const d of tx.newDirects.values()) createdHere.add(d.id);
      for (const row of rows) {
        const k = key(row.tenant_id, row.uuid);
        const c = { id: row.id, kind: Number(row.kind) };
        groups.set(k, c);
        // A direct conversation this transaction created is not committed yet: not cached.
        if (createdHere.has(row.id)) continue;
        if (this.#convIds.size >= this.#idCacheLimit) this.#convIds.clear();
        this.#convIds.set(k, c);
      }
    }

    // Messages named by conversation id whose sender is no current member: refused without taking
    // that conversation's locks (the answer must not wait on, or tell of, its writers).
    const strangers = new Set<number>();
    const lockedGroups = new Set<number>();
    if (groups.size > 0) {
      const convOf = (m: NewMessage): number | undefined =>
        'conversationId' in m.to && isUuid(m.to.conversationId) ? groups.get(key(m.tenantId, m.to.conversationId.toLowerCase()))?.id : undefined;
      const convs: number[] = [];
      const senders: number[] = [];
      for (const m of batch) {
        const c = convOf(m);
        if (c === undefined) continue;
        convs.push(c);
        senders.push(uid(m.tenantId, m.senderId));
      }
      const { rows } = await client.query<{ conv: number; user: number }>({ ...this.#sql.currentPairs, values: [convs, senders] });
      const current = new Set(rows.map((r) => `${r.conv}:${r.user}`));
      for (let i = 0; i < batch.length; i++) {
        const m = batch[i]!;
        const c = convOf(m);
        if (c === undefined) continue;
        if (current.has(`${c}:${uid(m.tenantId, m.senderId)}`)) lockedGroups.add(c);
        else strangers.add(i);
      }
    }

    // 2. Lock conversations, then read group members (stable under the conversation lock), then
    // lock every user the batch may append to: always in this order.
    const convIds = new Set<number>();
    for (const d of directs.values()) convIds.add(d.id);
    for (const c of lockedGroups) convIds.add(c);
    const convState = new Map<number, { lastSeq: number; closed: boolean }>();
    {
      const { rows } = await client.query<{ id: number; last_seq: string; closed: boolean }>({
        ...this.#sql.lockConversations,
        values: [[...convIds]],
      });
      for (const row of rows) convState.set(row.id, { lastSeq: Number(row.last_seq), closed: row.closed });
    }
    const groupMembers = new Map<number, CurrentMember[]>();
    if (lockedGroups.size > 0) {
      for (const m of await this.#currentMembers(client, [...lockedGroups])) {
        let list = groupMembers.get(m.conv);
        if (list === undefined) groupMembers.set(m.conv, (list = []));
        list.push(m);
        uuidOf.set(m.uid, m.uuid);
      }
    }
    const users = await this.#lockUsers(client, uuidOf.keys());
    await this.#readBacklogFloors(client, users, maxInboxSize, batch.length);

    // 3. Stored duplicates: read after the sender's lock, so a retry another node just committed
    // for this sender is seen here (every writer of a sender holds that sender's row lock).
    const cmids = batch.map((m) => (m.clientMsgId === undefined ? undefined : key(uid(m.tenantId, m.senderId), pgText(m.clientMsgId))));
    const existing = new Map<string, StoredMessage>();
    {
      const senders: number[] = [];
      const clientIds: string[] = [];
      for (let i = 0; i < batch.length; i++) {
        const m = batch[i]!;
        if (m.clientMsgId === undefined) continue;
        senders.push(uid(m.tenantId, m.senderId));
        clientIds.push(pgText(m.clientMsgId));
      }
      if (senders.length > 0) {
        const { rows } = await client.query<PgEventRow & { sender_int: number }>({
          ...this.#sql.findDuplicates,
          values: [senders, clientIds],
        });
        // A key names one operation of its sender, whatever its kind: an edit's or a delete's key
        // reused for a message answers with that event (as SQLite does) instead of reaching the
        // unique index, which would fail the whole batch — every sender's messages in it.
        for (const row of rows) existing.set(key(row.sender_int, row.client_msg_id!), this.#codec.decodeDuplicate(row, eventContext(row)));
      }
    }

    // 4. Decide each message in input order against counters read once for the batch.
    const w = new WriteSet();
    for (let i = 0; i < batch.length; i++) {
      const m = batch[i]!;
      const k = cmids[i];
      const first = k === undefined ? undefined : existing.get(k);
      if (first !== undefined) {
        out[i] = { status: 'duplicate', message: first };
        continue;
      }
      if (strangers.has(i)) {
        out[i] = FORBIDDEN_APPEND;
        continue;
      }
      const sender = uid(m.tenantId, m.senderId);
      let conv: number;
      let recipients: number[];
      let peer: number | undefined;
      let conversationId: string;
      /** The sender's membership, for a conversation named by id (a former member added back is a new writer). */
      let joinedSeq: number | undefined;
      if ('peerId' in m.to) {
        peer = uid(m.tenantId, m.to.peerId);
        const d = directs.get(directKey(sender, peer))!;
        conv = d.id;
        conversationId = d.uuid;
        recipients = peer === sender ? [sender] : [sender, peer];
      } else {
        const c = isUuid(m.to.conversationId) ? groups.get(key(m.tenantId, m.to.conversationId.toLowerCase())) : undefined;
        const id = c?.id;
        const state = id === undefined ? undefined : convState.get(id);
        const members = id === undefined ? undefined : groupMembers.get(id);
        const me = members?.find((x) => x.uid === sender);
        if (id === undefined || state === undefined || state.closed || members === undefined || me === undefined) {
          out[i] = FORBIDDEN_APPEND;
          continue;
        }
        joinedSeq = me.joinedSeq;
        conv = id;
        conversationId = m.to.conversationId.toLowerCase();
        if (c!.kind === KIND_DIRECT) {
          // A direct conversation named by its id: the other member (the sender for a note to self).
          peer = members.find((x) => x.uid !== sender)?.uid ?? sender;
          recipients = peer === sender ? [sender] : [sender, peer];
        } else {
          recipients = [];
          for (const x of members) {
            if (x.uid === sender) recipients.push(x.uid);
            else {
              const u = users.get(x.uid)!;
              if (!atInboxBound(u.lastPos, u.ackedPos, maxInboxSize, u.floor)) recipients.push(x.uid);
            }
          }
        }
      }
      // A direct message to a full inbox is refused (a group message only skips that member).
      if (peer !== undefined && peer !== sender) {
        const p = users.get(peer)!;
        if (atInboxBound(p.lastPos, p.ackedPos, maxInboxSize, p.floor)) {
          out[i] = INBOX_FULL;
          continue;
        }
      }
      const state = convState.get(conv)!;
      const seq = ++state.lastSeq;
      // The newest time, not the last one's: a batch is in time order only while the clock never steps back.
      w.convs.set(conv, { seq, at: Math.max(w.convs.get(conv)?.at ?? m.timestamp, m.timestamp) });
      const deliveries: Delivery[] = [];
      for (const r of recipients) {
        const u = users.get(r)!;
        const pos = ++u.lastPos;
        w.timeline(r, pos, conv, seq);
        deliveries.push({ userId: uuidOf.get(r)!, pos });
      }
      const sealed = this.#codec.encodeMessage(m);
      const e = w.ev;
      e.conv.push(conv);
      e.seq.push(seq);
      e.id.push(m.id);
      e.kind.push(EVENT_MESSAGE);
      e.sender.push(sender);
      e.content.push(pgText(sealed.content));
      e.keyId.push(sealed.keyId);
      e.replyTo.push(m.replyTo ?? null);
      e.attachments.push(sealed.attachments === null ? null : pgText(sealed.attachments));
      e.mentions.push(pgText(sealed.mentions));
      e.hashtags.push(pgText(sealed.hashtags));
      e.links.push(pgText(sealed.links));
      e.ts.push(m.timestamp);
      e.clientMsgId.push(m.clientMsgId === undefined ? null : pgText(m.clientMsgId));
      // Its sender's first message in a conversation marks them as having written (known ones skipped).
      const wk = joinedSeq === undefined ? `${conv} ${sender}` : `${conv} ${sender} ${joinedSeq}`;
      const firstWrite = !this.#writers.has(wk) && !w.wrote.has(wk);
      if (firstWrite) w.wrote.add(wk);
      const ctx: EventContext = { tenantId: m.tenantId, conversationId, conversationKind: peer === undefined ? 'group' : 'direct' };
      if (peer !== undefined) ctx.directMembers = [uuidOf.get(peer)!];
      const message = this.#codec.storedMessage(m, ctx, seq);
      if (k !== undefined) existing.set(k, message);
      // Not known to this node as a writer there: maybe the first (another node may have known).
      out[i] = firstWrite ? { status: 'stored', message, deliveries, firstWrite: true } : { status: 'stored', message, deliveries };
    }
    // A direct conversation this batch created for messages it then refused (inbox_full) or found
    // stored already (a clientMsgId's retry to a new peer) holds nothing: it goes again, or it would
    // list an empty conversation at the top of both users' lists (SQLite creates none).
    const unused = [...tx.newDirects].filter(([, c]) => !w.convs.has(c.id));
    if (unused.length > 0) {
      await client.query({ ...this.#sql.dropDirects, values: [unused.map(([, c]) => c.id)] });
      for (const [k] of unused) tx.newDirects.delete(k);
    }
    if (!w.empty) await client.query({ ...this.#sql.write, values: w.values() });
    for (const wk of w.wrote) tx.newWriters.add(wk);
    return out as AppendOutcome[];
  }

  // ---------------------------------------------------------------------------------------------
  // Groups

  async createGroup(request: CreateGroupRequest, limits: GroupLimits): Promise<GroupChangeOutcome> {
    this.#ready();
    const { tenantId, actorId } = request;
    if (!isUuid(request.conversationId) || !isUuid(request.eventId) || !isUuid(actorId)) return FORBIDDEN;
    const others: string[] = [];
    const seen = new Set([actorId.toLowerCase()]);
    for (const id of request.memberIds) {
      if (!isUuid(id)) return FORBIDDEN;
      const lower = id.toLowerCase();
      if (seen.has(lower)) continue;
      seen.add(lower);
      others.push(lower);
    }
    if (1 + others.length > limits.maxGroupMembers) return TOO_MANY_MEMBERS;
    const conversationId = request.conversationId.toLowerCase();
    return this.#groupTransaction(async (tx) => {
      const { client } = tx;
      const all = [actorId.toLowerCase(), ...others];
      const ids = await this.#resolveUsers(tx, all.map((u) => [tenantId, u]));
      const uids = all.map((u) => ids.get(key(tenantId, u))!);
      // A new conversation row is ours alone: locking the users first keeps the global order.
      const users = await this.#lockUsers(client, uids);
      // Under the actor's lock: a concurrent create with the same key has committed or waits.
      if (request.clientMsgId !== undefined) {
        const { rows: found } = await client.query<PgEventRow>({ ...this.#sql.findDuplicates, values: [[uids[0]], [pgText(request.clientMsgId)]] });
        if (found[0] !== undefined) return this.#createdBy(found[0]);
      }
      if (await this.#overGroupLimit(client, uids, limits.maxGroupsPerUser)) return TOO_MANY_GROUPS;
      const sealedName = this.#codec.sealName(conversationId, request.name);
      const { rows } = await client.query<{ id: number }>({
        ...this.#sql.insertGroup,
        values: [conversationId, tenantId, pgText(sealedName.name), sealedName.keyId, request.timestamp],
      });
      const conv = rows[0]?.id;
      if (conv === undefined) return FORBIDDEN; // that conversation id exists already
      const w = new WriteSet();
      uids.forEach((u, i) => w.member(conv, u, i === 0 ? ROLE_OWNER : ROLE_MEMBER, 1, null));
      const event: MembershipEvent = {
        kind: 'membership',
        id: request.eventId,
        tenantId,
        conversationId,
        seq: 1,
        action: 'created',
        actorId: all[0]!,
        userIds: all,
        name: request.name,
        timestamp: request.timestamp,
      };
      const deliveries = this.#addEvent(w, conv, event, uids[0]!, uids.map((u, i) => [u, all[i]!]), users, request.clientMsgId);
      await client.query({ ...this.#sql.write, values: w.values() });
      return { status: 'ok', event, deliveries };
    });
  }

  /** A create's key found on an event: the group it created, or forbidden when another operation holds the key. */
  #createdBy(row: PgEventRow): GroupChangeOutcome {
    const event = row.kind === EVENT_MEMBERSHIP ? this.#codec.decodeDuplicateEvent(row, eventContext(row)) : undefined;
    return event?.kind === 'membership' && event.action === 'created' ? { status: 'duplicate', event } : FORBIDDEN;
  }

  /** `limits.maxInboxSize`: see MembershipBound (inbox-bound.ts), as for the four changes below. */
  async addMembers(request: AddMembersRequest, limits: GroupLimits & MembershipBound): Promise<GroupChangeOutcome> {
    this.#ready();
    const targets = this.#uuidList(request.userIds);
    if (targets === undefined) return FORBIDDEN;
    return this.#groupChange(request, targets, async (g) => {
      if (g.actor.role < ROLE_ADMIN) return FORBIDDEN;
      const current = new Set(g.members.map((m) => m.uid));
      const adding = targets.filter((u) => !current.has(g.uidOf(u)));
      if (adding.length === 0) return UNCHANGED;
      if (g.members.length + adding.length > limits.maxGroupMembers) return TOO_MANY_MEMBERS;
      const addingIds = adding.map((u) => g.uidOf(u));
      const users = await this.#lockUsers(g.client, [...current, ...addingIds]);
      if (await this.#overGroupLimit(g.client, addingIds, limits.maxGroupsPerUser)) return TOO_MANY_GROUPS;
      const seq = g.lastSeq + 1;
      const w = new WriteSet();
      for (const id of addingIds) w.member(g.conv, id, ROLE_MEMBER, seq, null);
      const recipients: [number, string][] = [
        ...g.members.map((m): [number, string] => [m.uid, m.uuid]),
        ...addingIds.map((id, i): [number, string] => [id, adding[i]!]),
      ];
      return g.commit(w, users, { action: 'added', userIds: adding }, recipients);
    }, limits.maxInboxSize);
  }

  async removeMembers(request: RemoveMembersRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    this.#ready();
    const targets = this.#uuidList(request.userIds);
    if (targets === undefined) return FORBIDDEN;
    // Targets are matched against the members by uuid, never resolved: ids of users who never
    // were here must not become rows in `users` (an admin could make thousands a minute).
    return this.#groupChange(request, [], async (g) => {
      if (g.actor.role < ROLE_ADMIN) return FORBIDDEN;
      const byUid = new Map(g.members.map((m) => [m.uid, m]));
      const byUuid = new Map(g.members.map((m) => [m.uuid, m]));
      const removing = targets.map((u) => byUuid.get(u)).filter((m): m is CurrentMember => m !== undefined);
      for (const m of removing) {
        if (m.role === ROLE_OWNER) return FORBIDDEN;
        if (m.role === ROLE_ADMIN && g.actor.role !== ROLE_OWNER) return FORBIDDEN;
      }
      if (removing.length === 0) return UNCHANGED;
      const users = await this.#lockUsers(g.client, byUid.keys());
      const seq = g.lastSeq + 1;
      const w = new WriteSet();
      for (const m of removing) w.member(g.conv, m.uid, m.role, m.joinedSeq, seq);
      return g.commit(
        w,
        users,
        { action: 'removed', userIds: removing.map((m) => m.uuid) },
        g.members.map((m) => [m.uid, m.uuid]),
      );
    }, bound.maxInboxSize);
  }

  async leaveGroup(request: LeaveGroupRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    this.#ready();
    return this.#groupChange(request, [], async (g) => {
      const users = await this.#lockUsers(g.client, g.members.map((m) => m.uid));
      const seq = g.lastSeq + 1;
      const w = new WriteSet();
      w.member(g.conv, g.actor.uid, g.actor.role, g.actor.joinedSeq, seq);
      const remaining = g.members.filter((m) => m.uid !== g.actor.uid);
      const change: Partial<MembershipEvent> = { action: 'left', userIds: [g.actor.uuid] };
      if (g.actor.role === ROLE_OWNER && remaining.length > 0) {
        const byTenure = (a: CurrentMember, b: CurrentMember) =>
          a.joinedSeq - b.joinedSeq || (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0);
        const admins = remaining.filter((m) => m.role === ROLE_ADMIN).sort(byTenure);
        const heir = admins[0] ?? [...remaining].sort(byTenure)[0]!;
        w.member(g.conv, heir.uid, ROLE_OWNER, heir.joinedSeq, null);
        change.newOwnerId = heir.uuid;
      }
      if (remaining.length === 0) {
        await g.client.query({ ...this.#sql.updateGroup, values: [g.conv, g.name, g.nameKeyId, true] });
      }
      return g.commit(w, users, change, g.members.map((m) => [m.uid, m.uuid]));
    }, bound.maxInboxSize);
  }

  async renameGroup(request: RenameGroupRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    this.#ready();
    return this.#groupChange(request, [], async (g) => {
      if (g.actor.role < ROLE_ADMIN) return FORBIDDEN;
      const name = pgText(request.name);
      if (this.#codec.currentName(g.conversationId, g.name, g.nameKeyId) === name) return UNCHANGED;
      const users = await this.#lockUsers(g.client, g.members.map((m) => m.uid));
      const sealed = this.#codec.sealName(g.conversationId, name);
      await g.client.query({ ...this.#sql.updateGroup, values: [g.conv, sealed.name, sealed.keyId, false] });
      return g.commit(new WriteSet(), users, { action: 'renamed', userIds: [], name: request.name }, g.members.map((m) => [m.uid, m.uuid]));
    }, bound.maxInboxSize);
  }

  async setRole(request: SetRoleRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    this.#ready();
    if (!isUuid(request.userId)) return FORBIDDEN;
    const target = request.userId.toLowerCase();
    return this.#groupChange(request, [], async (g) => {
      if (g.actor.role !== ROLE_OWNER) return FORBIDDEN;
      const m = g.members.find((x) => x.uuid === target);
      if (m === undefined || m.role === ROLE_OWNER) return FORBIDDEN;
      const role = roleCode(request.role);
      if (m.role === role) return UNCHANGED;
      const users = await this.#lockUsers(g.client, g.members.map((x) => x.uid));
      const w = new WriteSet();
      w.member(g.conv, m.uid, role, m.joinedSeq, null);
      return g.commit(w, users, { action: 'role_changed', userIds: [m.uuid], role: request.role }, g.members.map((x) => [x.uid, x.uuid]));
    }, bound.maxInboxSize);
  }

  /** Deduplicated lowercase uuids, or undefined when one is not a UUID. */
  #uuidList(ids: readonly string[]): string[] | undefined {
    const out: string[] = [];
    const seen = new Set<string>();
    for (const id of ids) {
      if (!isUuid(id)) return undefined;
      const lower = id.toLowerCase();
      if (seen.has(lower)) continue;
      seen.add(lower);
      out.push(lower);
    }
    return out;
  }

  /**
   * One group change in its own transaction: resolve the users, lock the group (forbidden when it
   * is missing, of another tenant, closed, or the actor is no current member), read its members.
   * `maxInboxSize`: the backlog bound of the members the event does not name (see #addEvent).
   */
  async #groupChange(
    request: { tenantId: string; actorId: string; eventId: string; timestamp: number; conversationId: string },
    targets: readonly string[],
    change: (g: GroupContext) => Promise<GroupChangeOutcome>,
    maxInboxSize?: number,
  ): Promise<GroupChangeOutcome> {
    const { tenantId } = request;
    if (!isUuid(request.conversationId) || !isUuid(request.actorId) || !isUuid(request.eventId)) return FORBIDDEN;
    const conversationId = request.conversationId.toLowerCase();
    const actorUuid = request.actorId.toLowerCase();
    return this.#groupTransaction(async (tx) => {
      const { client } = tx;
      // A stranger's answer neither waits on nor tells of the group's writers (no lock yet).
      const { rowCount } = await client.query({ ...this.#sql.isCurrentMember, values: [conversationId, tenantId, actorUuid] });
      if (rowCount === 0) return FORBIDDEN;
      const ids = await this.#resolveUsers(tx, [actorUuid, ...targets].map((u) => [tenantId, u]));
      const { rows } = await client.query<{ id: number; last_seq: string; closed: boolean; name: string | null; key_id: string | null }>({
        ...this.#sql.lockGroup,
        values: [conversationId, tenantId],
      });
      const group = rows[0];
      if (group === undefined || group.closed) return FORBIDDEN;
      const members = await this.#currentMembers(client, [group.id]);
      const actorId = ids.get(key(tenantId, actorUuid))!;
      const actor = members.find((m) => m.uid === actorId);
      if (actor === undefined) return FORBIDDEN;
      const lastSeq = Number(group.last_seq);
      const g: GroupContext = {
        client,
        conv: group.id,
        conversationId,
        lastSeq,
        name: group.name,
        nameKeyId: group.key_id,
        members,
        actor,
        uidOf: (uuid) => ids.get(key(tenantId, uuid))!,
        commit: async (w, users, fields, recipients) => {
          const event = {
            kind: 'membership',
            id: request.eventId,
            tenantId,
            conversationId,
            seq: lastSeq + 1,
            actorId: actor.uuid,
            userIds: [],
            timestamp: request.timestamp,
            ...fields,
          } as MembershipEvent;
          if (maxInboxSize !== undefined) await this.#readBacklogFloors(client, users, maxInboxSize, 1);
          const deliveries = this.#addEvent(w, group.id, event, actor.uid, recipients, users, undefined, maxInboxSize);
          await client.query({ ...this.#sql.write, values: w.values() });
          return { status: 'ok', event, deliveries };
        },
      };
      return change(g);
    });
  }

  /**
   * Add a membership event and one timeline entry per recipient (in order, once each) to `w`. With
   * `maxInboxSize`, a recipient at the bound whom the event does not name is skipped, as a group
   * message skips them (inbox-bound.ts MembershipBound; floors read by #readBacklogFloors): no
   * entry, no delivery.
   */
  #addEvent(
    w: WriteSet,
    conv: number,
    event: MembershipEvent,
    actor: number,
    recipients: readonly [number, string][],
    users: Map<number, LockedUser>,
    clientMsgId?: string,
    maxInboxSize?: number,
  ): Delivery[] {
    const sealed = this.#codec.encodeMembership(event);
    const e = w.ev;
    e.conv.push(conv);
    e.seq.push(event.seq);
    e.id.push(event.id);
    e.kind.push(EVENT_MEMBERSHIP);
    e.sender.push(actor);
    e.content.push(pgText(sealed.content));
    e.keyId.push(sealed.keyId);
    e.replyTo.push(null);
    e.attachments.push(null);
    e.mentions.push('[]');
    e.hashtags.push('[]');
    e.links.push('[]');
    e.ts.push(event.timestamp);
    e.clientMsgId.push(clientMsgId === undefined ? null : pgText(clientMsgId));
    w.convs.set(conv, { seq: event.seq, at: event.timestamp });
    const deliveries: Delivery[] = [];
    const done = new Set<number>();
    const named = maxInboxSize === undefined ? undefined : namedByMembership(event);
    for (const [uid, uuid] of recipients) {
      if (done.has(uid)) continue;
      done.add(uid);
      const u = users.get(uid)!;
      if (named !== undefined && !named.has(uuid.toLowerCase()) && atInboxBound(u.lastPos, u.ackedPos, maxInboxSize!, u.floor)) continue;
      const pos = ++u.lastPos;
      w.timeline(uid, pos, conv, event.seq);
      deliveries.push({ userId: uuid, pos });
    }
    return deliveries;
  }

  async #overGroupLimit(client: pg.PoolClient, uids: readonly number[], maxGroupsPerUser: number): Promise<boolean> {
    if (uids.length === 0) return false;
    const { rows } = await client.query<{ uid: number; n: number }>({ ...this.#sql.groupCounts, values: [uids] });
    return rows.some((row) => row.n + 1 > maxGroupsPerUser);
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  async directConversationId(tenantId: string, userId: string, peerId: string): Promise<string | undefined> {
    this.#ready();
    if (!isUuid(userId) || !isUuid(peerId)) return undefined;
    // Cached once found (a direct conversation never changes or goes away): no round trip per typing frame.
    const [x, y] = [userId.toLowerCase(), peerId.toLowerCase()].sort();
    const pair = key(tenantId, x!, y!);
    const known = this.#directByPair.get(pair);
    if (known !== undefined) return known;
    const a = this.#userIds.get(key(tenantId, x!));
    const b = this.#userIds.get(key(tenantId, y!));
    const written = a === undefined || b === undefined ? undefined : this.#directs.get(directKey(a, b));
    if (written !== undefined) return written.uuid; // this node wrote in it
    const { rows } = await this.#pool.query<{ uuid: string }>({ ...this.#sql.directOf, values: [tenantId, userId, peerId] });
    const found = rows[0]?.uuid;
    if (found !== undefined) {
      if (this.#directByPair.size >= WRITERS_CACHE_LIMIT) this.#directByPair.clear();
      this.#directByPair.set(pair, found);
    }
    return found;
  }

  async audienceOf(tenantId: string, conversationId: string, userId: string): Promise<Audience | undefined> {
    this.#ready();
    if (!isUuid(conversationId) || !isUuid(userId)) return undefined;
    const { rows } = await this.#pool.query<{ user_id: string; wrote: boolean; delivered_seq: string; receipt_seq: string }>({
      ...this.#sql.members,
      values: [conversationId, tenantId, userId, false],
    });
    if (rows.length === 0) return undefined;
    const members = rows.map((r) => r.user_id);
    const own = rows.find((r) => r.user_id === userId.toLowerCase());
    const positions = { delivered: Number(own?.delivered_seq ?? 0), read: Number(own?.receipt_seq ?? 0) };
    return { members, sharing: this.#strangerPrivacy ? rows.filter((r) => r.wrote).map((r) => r.user_id) : members, positions };
  }

  async membersIfMember(tenantId: string, conversationId: string, userId: string, options: { formerToo?: boolean } = {}): Promise<string[] | undefined> {
    this.#ready();
    if (!isUuid(conversationId) || !isUuid(userId)) return undefined;
    const { rows } = await this.#pool.query<{ user_id: string }>({
      ...this.#sql.members,
      values: [conversationId, tenantId, userId, options.formerToo === true],
    });
    if (rows.length > 0) return rows.map((r) => r.user_id);
    if (options.formerToo !== true) return undefined;
    // No current member (the last one left: the group is closed): a former member is still told
    // so, as by SQLite — [] rather than the stranger's undefined (store.ts).
    const { rows: was } = await this.#pool.query<{ id: number }>({ ...this.#sql.memberOf, values: [conversationId, tenantId, userId] });
    return was.length === 0 ? undefined : [];
  }

  async timeline(tenantId: string, userId: string, after: number, limit: number): Promise<TimelinePage> {
    this.#ready();
    const state = await this.#userState(tenantId, userId);
    if (state === undefined) return { entries: [], firstPos: 1, lastPos: 0 };
    const { id, lastPos } = state;
    let { firstPos } = state;
    let entries: TimelineEntry[] = [];
    let scanned: TimelinePage['scanned'];
    if (limit >= 1 && after < lastPos) {
      const { rows } = await this.#pool.query<PgEventRow & { pos: string; tl_conv: number }>({
        ...this.#sql.timeline,
        values: [id, Math.floor(after), lastPos, Math.floor(limit)],
      });
      let edited: Set<number> | undefined;
      for (const row of rows) {
        const event = this.#decode(row);
        if (event.kind === 'message' && event.editedAt !== undefined && event.deletedAt === undefined) (edited ??= new Set()).add(row.tl_conv);
        entries.push({ pos: Number(row.pos), event });
      }
      if (edited !== undefined) entries = await this.#timelineOfFormerMember(id, entries, rows, edited);
      if (entries.length < rows.length) scanned = { count: rows.length, toPos: Number(rows[rows.length - 1]!.pos) };
      // Two statements, two snapshots: every entry in (after, lastPos] is committed, so none at all
      // means retention deleted them in between. The state read again says from where on to
      // continue (else the stream would wait, unaware, for the user's next event).
      if (rows.length === 0) firstPos = (await this.#userState(tenantId, userId))?.firstPos ?? firstPos;
    }
    return scanned === undefined ? { entries, firstPos, lastPos } : { entries, firstPos, lastPos, scanned };
  }

  /**
   * Entries of conversations the user has left — or of an earlier membership, when they were
   * re-added since — show each edited message as it stood when that membership ended, as `history`
   * does (former-member-view.ts); one whose body of then is no longer stored is left out, and the
   * device stream reports the hole as `timeline_pruned`. `edited`: the conversations of the page's
   * edited messages (only those can differ).
   */
  async #timelineOfFormerMember(user: number, entries: TimelineEntry[], rows: readonly { tl_conv: number }[], edited: Set<number>): Promise<TimelineEntry[]> {
    const { rows: found } = await this.#pool.query<{ conv: number; joined_seq: string; left_seq: string | null; period: boolean }>({
      ...this.#fsql.memberships,
      values: [user, [...edited]],
    });
    const current = new Map<number, { joined: number; left: number | null }>();
    const periods = new Map<number, MembershipPeriod[]>();
    for (const r of found) {
      if (!r.period) current.set(r.conv, { joined: Number(r.joined_seq), left: r.left_seq === null ? null : Number(r.left_seq) });
      else {
        const list = periods.get(r.conv) ?? [];
        list.push({ joined_seq: Number(r.joined_seq), left_seq: Number(r.left_seq) });
        periods.set(r.conv, list);
      }
    }
    const out: TimelineEntry[] = [];
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      const conv = rows[i]!.tl_conv;
      const m = current.get(conv);
      const e = entry.event;
      const until = m === undefined || e.kind !== 'message' ? undefined : seenUntil(e.seq, m.joined, m.left, () => periods.get(conv) ?? []);
      if (until === undefined) {
        out.push(entry);
        continue;
      }
      const [seen] = await this.#asSeenBy(conv, [e], until);
      if (seen !== undefined) out.push({ pos: entry.pos, event: seen });
    }
    return out;
  }

  async syncState(tenantId: string, userId: string, deviceId?: string): Promise<SyncState> {
    this.#ready();
    if (!isUuid(userId)) return { lastPos: 0, userAckedPos: 0 };
    const { rows } = await this.#pool.query<{ last_pos: string; acked_pos: string; device_pos: string | null }>({
      ...this.#sql.syncState,
      values: [tenantId, userId, deviceId === undefined ? null : pgText(deviceId)],
    });
    const row = rows[0];
    if (row === undefined) return { lastPos: 0, userAckedPos: 0 };
    const state: SyncState = { lastPos: Number(row.last_pos), userAckedPos: Number(row.acked_pos) };
    if (deviceId !== undefined && row.device_pos !== null) state.deviceAckedPos = Number(row.device_pos);
    return state;
  }

  async ack(tenantId: string, userId: string, deviceId: string | undefined, upTo: number): Promise<number> {
    this.#ready();
    if (!isUuid(userId)) return 0;
    const position = Number.isFinite(upTo) ? Math.floor(upTo) : 0;
    if (deviceId === undefined) {
      const { rows } = await this.#pool.query<{ acked_pos: string }>({ ...this.#sql.ackUser, values: [tenantId, userId, position] });
      return Number(rows[0]?.acked_pos ?? 0);
    }
    const { rows } = await this.#pool.query<{ acked_pos: string }>({
      ...this.#sql.ackDevice,
      values: [tenantId, userId, position, pgText(deviceId), this.#maxDevices],
    });
    return Number(rows[0]?.acked_pos ?? 0);
  }

  async history(tenantId: string, userId: string, ref: ConversationRef, query: HistoryQuery): Promise<HistoryPage | undefined> {
    this.#ready();
    if (!isUuid(userId)) return undefined;
    type Ref = { id: number; uuid: string; kind: number; joined_seq: string; left_seq: string | null };
    let row: Ref | undefined;
    if ('conversationId' in ref) {
      if (!isUuid(ref.conversationId)) return undefined;
      ({ rows: [row] } = await this.#pool.query<Ref>({ ...this.#sql.memberOf, values: [ref.conversationId, tenantId, userId] }));
      if (row === undefined) return undefined;
    } else {
      if (!isUuid(ref.peerId)) return undefined;
      ({ rows: [row] } = await this.#pool.query<Ref>({ ...this.#sql.directOf, values: [tenantId, userId, ref.peerId] }));
      if (row === undefined) return { events: [] };
    }
    const page: HistoryPage = { conversationId: row.uuid, events: [] };
    if (!(query.limit >= 1)) return page;
    const from = row.kind === KIND_GROUP && query.groupHistory === 'since_join' ? Number(row.joined_seq) : 1;
    const to = row.left_seq === null ? Number.MAX_SAFE_INTEGER : Number(row.left_seq);
    const limit = Math.floor(query.limit);
    // Both cursors bound the page inside the query (a filter after its LIMIT would shorten the page).
    const before = query.beforeSeq === undefined ? Number.MAX_SAFE_INTEGER : Math.floor(query.beforeSeq);
    if (query.beforeId !== undefined && !isUuid(query.beforeId)) return page;
    const conv = row.id;
    const read = async (below: number | undefined): Promise<ConversationEvent[]> => {
      const { rows } =
        below === undefined && query.beforeId !== undefined
          ? await this.#pool.query<PgEventRow>({ ...this.#sql.historyBeforeId, values: [conv, from, to, query.beforeId, limit, before] })
          : await this.#pool.query<PgEventRow>({ ...this.#sql.history, values: [conv, from, to, below ?? before, limit] });
      return rows.map((r) => this.#decode(r));
    };
    const left = row.left_seq;
    page.events =
      left === null ? await read(undefined) : await formerMemberPage(limit, read, (events) => this.#asSeenBy(conv, events, Number(left)));
    return page;
  }

  /** A former member's page (former-member-view.ts), with the edits it needs read in one query. */
  async #asSeenBy(conv: number, events: ConversationEvent[], leftSeq: number): Promise<ConversationEvent[]> {
    const edited = editedMessages(events).map((e) => e.id);
    if (edited.length === 0) return events;
    const { rows } = await this.#pool.query<PgEventRow>({ ...this.#fsql.editsOf, values: [conv, edited] });
    const edits = new Map<string, MessageEditEvent[]>();
    for (const r of rows) {
      const e = this.#decode(r) as MessageEditEvent;
      const list = edits.get(e.messageId);
      if (list === undefined) edits.set(e.messageId, [e]);
      else list.push(e);
    }
    return asSeenByFormerMember(events, leftSeq, (messageId) => edits.get(messageId) ?? []);
  }

  async listConversations(tenantId: string, userId: string, query: ConversationListQuery): Promise<ConversationListPage> {
    this.#ready();
    if (!isUuid(userId) || !(query.limit >= 1)) return { conversations: [] };
    const cursor = query.before === undefined ? undefined : decodeListCursor(query.before);
    if (query.before !== undefined && cursor === undefined) return { conversations: [] };
    const limit = Math.floor(query.limit);
    const { rows } = await this.#pool.query<{
      id: number;
      uuid: string;
      kind: number;
      name: string | null;
      key_id: string | null;
      last_seq: string;
      last_at: string;
      role: number;
      read_seq: string;
      joined_seq: string;
      member_count: number;
      peer_uuid: string | null;
      unread: number;
    }>({
      ...this.#sql.listConversations,
      values: [tenantId, userId, cursor?.lastAt ?? null, cursor?.conversationId ?? null, limit + 1],
    });
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    const last = new Map<number, StoredMessage>();
    if (page.length > 0) {
      const { rows: messages } = await this.#pool.query<PgEventRow>({
        ...this.#sql.lastMessages,
        values: [page.map((r) => r.id), page.map((r) => (r.kind === KIND_DIRECT || query.groupHistory === 'all' ? 0 : Number(r.joined_seq)))],
      });
      for (const m of messages) {
        const event = this.#decode(m);
        if (event.kind === 'message') last.set(page.find((r) => r.uuid === event.conversationId)!.id, event);
      }
    }
    const conversations = page.map((r): ConversationSummary => {
      const direct = r.kind === KIND_DIRECT;
      const summary: ConversationSummary = {
        conversationId: r.uuid,
        kind: direct ? 'direct' : 'group',
        role: direct ? 'member' : roleName(r.role),
        memberCount: r.member_count,
        lastSeq: Number(r.last_seq),
        lastActivityAt: Number(r.last_at),
        readSeq: Number(r.read_seq),
        unreadCount: r.unread,
      };
      if (!direct) {
        const name = this.#codec.openName(r.uuid, r.name, r.key_id);
        if (name !== undefined) summary.name = name;
      }
      if (direct && r.peer_uuid !== null) summary.peerId = r.peer_uuid;
      const message = last.get(r.id);
      if (message !== undefined) summary.lastMessage = message;
      return summary;
    });
    const result: ConversationListPage = { conversations };
    const tail = page[page.length - 1];
    if (more && tail !== undefined) result.nextCursor = encodeListCursor(Number(tail.last_at), tail.uuid);
    return result;
  }

  async markRead(tenantId: string, userId: string, conversationId: string, upToSeq: number): Promise<number | undefined> {
    return (await this.updateRead(tenantId, userId, conversationId, upToSeq, { private: false }))?.readSeq;
  }

  async updateRead(tenantId: string, userId: string, conversationId: string, upToSeq: number, options: { private: boolean }): Promise<ReadResult | undefined> {
    this.#ready();
    if (!isUuid(userId) || !isUuid(conversationId)) return undefined;
    const position = Number.isFinite(upToSeq) ? Math.floor(upToSeq) : 0;
    return this.#transaction(async ({ client }) => {
      const { rows } = await client.query<{ conv: number; user: number; read_seq: string; receipt_seq: string; last_seq: string }>({
        ...this.#fsql.readState,
        values: [tenantId, userId, conversationId],
      });
      const m = rows[0];
      if (m === undefined) return undefined;
      const oldRead = Number(m.read_seq);
      const oldReceipt = Number(m.receipt_seq);
      const target = Math.min(position, Number(m.last_seq));
      const readSeq = Math.max(oldRead, target);
      const receiptSeq = options.private ? oldReceipt : Math.max(oldReceipt, target);
      if (readSeq !== oldRead || receiptSeq !== oldReceipt) {
        await client.query({ ...this.#fsql.setRead, values: [m.conv, m.user, readSeq, receiptSeq] });
      }
      return { readSeq, receiptSeq, receiptMoved: receiptSeq !== oldReceipt };
    });
  }

  async acknowledge(tenantId: string, userId: string, deviceId: string | undefined, upTo: number): Promise<AckResult> {
    this.#ready();
    if (!isUuid(userId)) return { position: 0, delivered: [] };
    const position = Number.isFinite(upTo) ? Math.floor(upTo) : 0;
    return this.#transaction(async ({ client }) => {
      const { rows } = await client.query<{ id: number; last_pos: string; acked_pos: string }>({ ...this.#fsql.lockUser, values: [tenantId, userId] });
      const u = rows[0];
      if (u === undefined) return { position: 0, delivered: [] };
      const before = Number(u.acked_pos);
      const target = Math.max(0, Math.min(position, Number(u.last_pos)));
      const delivered: AckResult['delivered'] = [];
      if (target > before) {
        await client.query({ ...this.#fsql.setUserAcked, values: [u.id, target] });
        const moved = await client.query<{ uuid: string; delivered_seq: string }>({ ...this.#fsql.advanceDelivered, values: [u.id, before, target] });
        for (const r of moved.rows) delivered.push({ conversationId: r.uuid, delivered: Number(r.delivered_seq) });
      }
      if (deviceId === undefined) return { position: Math.max(target, before), delivered };
      const d = await client.query<{ acked_pos: string }>({ ...this.#fsql.upsertDevice, values: [u.id, pgText(deviceId), target, this.#maxDevices] });
      return { position: Number(d.rows[0]?.acked_pos ?? target), delivered };
    });
  }

  async receipts(tenantId: string, userId: string, conversationIds: readonly string[], detailMax: number): Promise<Map<string, ConversationReceipts>> {
    this.#ready();
    const out = new Map<string, ConversationReceipts>();
    const ids = conversationIds.filter(isUuid);
    if (!isUuid(userId) || ids.length === 0) return out;
    const { rows } = await this.#pool.query<{ uuid: string; user_id: string | null; delivered_seq: string | null; receipt_seq: string | null }>({
      ...(this.#strangerPrivacy ? this.#fsql.receipts : this.#fsql.allReceipts),
      values: [tenantId, userId, ids],
    });
    const all = new Map<string, MemberReceipt[]>();
    for (const r of rows) {
      let list = all.get(r.uuid);
      if (list === undefined) all.set(r.uuid, (list = []));
      if (r.user_id !== null) list.push({ userId: r.user_id, delivered: Number(r.delivered_seq), read: Number(r.receipt_seq) });
    }
    for (const [uuid, list] of all) {
      const r: ConversationReceipts = {
        delivered: list.length === 0 ? 0 : Math.min(...list.map((m) => m.delivered)),
        read: list.length === 0 ? 0 : Math.min(...list.map((m) => m.read)),
      };
      if (list.length <= detailMax) r.members = list;
      out.set(uuid, r);
    }
    return out;
  }

  async editMessage(request: EditMessageRequest, options: MessageChangeOptions): Promise<MessageChangeOutcome> {
    this.#ready();
    return this.#changeMessage(request, options, 'edit');
  }

  async deleteMessage(request: DeleteMessageRequest, options: MessageChangeOptions): Promise<MessageChangeOutcome> {
    this.#ready();
    return this.#changeMessage(request, options, 'delete');
  }

  async contactsOf(tenantId: string, userId: string): Promise<string[]> {
    this.#ready();
    if (!isUuid(userId)) return [];
    const { rows } = await this.#pool.query<{ user_id: string }>({ ...(this.#strangerPrivacy ? this.#fsql.contacts : this.#fsql.allContacts), values: [tenantId, userId] });
    return rows.map((r) => r.user_id);
  }

  async setPresenceVisible(tenantId: string, userId: string, visible: boolean): Promise<void> {
    this.#ready();
    if (!isUuid(userId)) throw new TypeError('user ids must be UUIDs');
    await this.#pool.query({ ...this.#fsql.setPresence, values: [tenantId, userId, visible] });
  }

  async presenceSettings(tenantId: string, userIds: readonly string[]): Promise<Map<string, boolean>> {
    this.#ready();
    const out = new Map<string, boolean>();
    const ids = userIds.filter(isUuid);
    if (ids.length === 0) return out;
    const { rows } = await this.#pool.query<{ user_id: string; presence: boolean }>({ ...this.#fsql.presenceSettings, values: [tenantId, ids] });
    for (const r of rows) out.set(r.user_id, r.presence);
    return out;
  }

  /** Edit or delete in one transaction: the conversation row is locked first, then the members' user rows (the append path's order). */
  async #changeMessage(r: EditMessageRequest | DeleteMessageRequest, o: MessageChangeOptions, what: 'edit' | 'delete'): Promise<MessageChangeOutcome> {
    if (!isUuid(r.actorId) || !isUuid(r.messageId)) return M_FORBIDDEN;
    const messageId = r.messageId.toLowerCase();
    return this.#transaction(async ({ client }) => {
      const q = async <R extends pg.QueryResultRow>(name: FeatureSqlName, values: unknown[]): Promise<R[]> =>
        (await client.query<R>({ ...this.#fsql[name], values })).rows;
      const [actorRow] = await q<{ id: number }>('userIdOf', [r.tenantId, r.actorId]);
      if (actorRow === undefined) return M_FORBIDDEN;
      const actor = actorRow.id;
      const duplicate = async (): Promise<MessageChangeOutcome | undefined> => {
        if (r.clientMsgId === undefined) return undefined;
        const [first] = await q<PgEventRow>('duplicate', [actor, pgText(r.clientMsgId)]);
        return first === undefined ? undefined : { status: 'duplicate', event: this.#codec.decodeDuplicateEvent(first, eventContext(first)) as MessageChangeEvent | StoredMessage };
      };
      const [located] = await q<{ conv: number }>('targetConv', [messageId, r.tenantId]);
      if (located === undefined) return (await duplicate()) ?? M_FORBIDDEN;
      const conv = located.conv;
      // A stranger's answer neither waits on nor tells of the conversation's writers (no lock yet).
      const [current] = await q<{ role: number; left_seq: string | null }>('membership', [conv, actor]);
      if (current === undefined || current.left_seq !== null) return (await duplicate()) ?? M_FORBIDDEN;
      // The message's row first, holding nothing else: a prune that holds it (the message is
      // expiring) makes this change wait alone, not with the conversation's and its members' locks
      // taken — every batch of those users would wait as long. No row: not a message (an edit's own
      // id, which every member is sent, and whose row a prune may hold too) or pruned meanwhile —
      // refused before any lock, as a stranger is.
      if ((await q('lockTarget', [messageId])).length === 0) return (await duplicate()) ?? M_FORBIDDEN;
      // Locks in the order every writer takes them (the conversation, then its members' user
      // rows, by id) and only then the duplicate check: the actor's row lock orders this against
      // a message batch carrying the same key, as it does between batches. Checked before the
      // lock, the key's index entry could be taken under a batch holding the actor's lock, and
      // one of the two transactions — possibly a batch of other senders' messages — would fail.
      const [state] = await q<{ last_seq: string; closed: boolean; kind: number }>('lockConv', [conv]);
      const members = await this.#currentMembers(client, [conv]);
      const users = await this.#lockUsers(client, members.map((m) => m.uid));
      if (what === 'edit') await this.#readBacklogFloors(client, users, o.maxInboxSize, 1);
      const first = await duplicate();
      if (first !== undefined) return first;
      const [row] = await q<PgEventRow & { sender_int: number }>('target', [messageId]);
      if (state === undefined || row === undefined || state.closed) return M_FORBIDDEN;
      if (row.kind !== EVENT_MESSAGE && row.kind !== EVENT_TOMBSTONE) return M_FORBIDDEN;
      const [me] = await q<{ role: number; left_seq: string | null }>('membership', [conv, actor]);
      if (me === undefined || me.left_seq !== null) return M_FORBIDDEN;
      const own = row.sender_int === actor;
      if (what === 'edit') {
        const window = o.editWindowMs ?? 0;
        if (!own || row.kind !== EVENT_MESSAGE || window <= 0 || r.timestamp - Number(row.ts) > window) return M_FORBIDDEN;
      } else {
        const moderator = state.kind === KIND_GROUP && (me.role === ROLE_OWNER || me.role === ROLE_ADMIN);
        if (!own && !moderator) return M_FORBIDDEN;
        if (row.kind === EVENT_TOMBSTONE) return { status: 'unchanged', message: this.#decode(row) as StoredMessage };
      }
      const seq = Number(state.last_seq) + 1;
      const cmid = r.clientMsgId === undefined ? null : pgText(r.clientMsgId);
      if (what === 'edit') {
        const body = (r as EditMessageRequest).body;
        const clean = { content: pgText(body.content), mentions: body.mentions, hashtags: body.hashtags, links: body.links };
        const e = this.#codec.encodeBody(r.eventId, clean);
        await q('insertEvent', [conv, seq, r.eventId, EVENT_EDIT, actor, e.content, e.keyId, messageId, e.attachments, e.mentions, e.hashtags, e.links, r.timestamp, cmid]);
        const old = this.#decode(row) as StoredMessage;
        const m = this.#codec.encodeBody(messageId, { ...clean, ...(old.attachments !== undefined ? { attachments: old.attachments } : {}) });
        await q('setBody', [conv, row.seq, m.content, m.keyId, m.attachments, m.mentions, m.hashtags, m.links, r.timestamp]);
      } else {
        await q('insertEvent', [conv, seq, r.eventId, EVENT_DELETE, actor, '', null, messageId, null, '[]', '[]', '[]', r.timestamp, cmid]);
        await q('tombstone', [conv, row.seq, this.#codec.tombstoneContent(r.timestamp, r.actorId.toLowerCase())]);
        await q('eraseEdits', [conv, messageId]);
      }
      // The seq counter moves; the activity time does not: an edit or delete is a change, not activity
      // (it would reorder list_conversations under a paging cursor for members it is not even sent to).
      await q('setConv', [conv, seq]);
      const tl = { user: [] as number[], pos: [] as number[], conv: [] as number[], seq: [] as number[] };
      const deliveries: Delivery[] = [];
      // An edit skips a group member who joined after the message (not theirs to see under since_join);
      // a delete reaches every current member: it carries no content, and a member re-added since
      // may hold the message from an earlier membership (erasure must reach every copy).
      const editSkipsLater = what === 'edit' && state.kind === KIND_GROUP && o.groupHistory !== 'all';
      for (const m of members) {
        if (m.uid !== actor && editSkipsLater && m.joinedSeq > Number(row.seq)) continue;
        const u = users.get(m.uid)!;
        // An edit skips a member at the bound, as a message does; a delete reaches every copy.
        if (what === 'edit' && m.uid !== actor && atInboxBound(u.lastPos, u.ackedPos, o.maxInboxSize, u.floor)) continue;
        const pos = u.lastPos + 1;
        tl.user.push(m.uid);
        tl.pos.push(pos);
        tl.conv.push(conv);
        tl.seq.push(seq);
        deliveries.push({ userId: m.uuid, pos });
      }
      if (tl.user.length > 0) await q('appendTimeline', [tl.user, tl.pos, tl.conv, tl.seq]);
      const [eventRow] = await q<PgEventRow>('eventById', [r.eventId]);
      const [messageRow] = await q<PgEventRow>('eventById', [messageId]);
      return {
        status: 'ok',
        event: this.#decode(eventRow!) as MessageChangeEvent,
        message: this.#decode(messageRow!) as StoredMessage,
        deliveries,
      };
    });
  }

  async pruneOlderThan(olderThan: number): Promise<number> {
    this.#ready();
    return this.#transaction(async ({ client }) => {
      // Background housekeeping over a possibly large backlog: exempt from statement_timeout.
      await client.query('SET LOCAL statement_timeout = 0');
      const { rows } = await client.query<{ n: number }>({ ...this.#sql.prune, values: [uuidv7Floor(olderThan), Math.floor(olderThan)], ...NO_QUERY_TIMEOUT });
      return rows[0]?.n ?? 0;
    });
  }

  async ping(): Promise<void> {
    this.#open();
    await this.#pool.query('SELECT 1');
  }

  /** How many ids the caches hold (bounded by `idCacheLimit`; for tests and diagnostics). */
  cachedIds(): { users: number; conversations: number; directPairs: number } {
    return { users: this.#userIds.size, conversations: this.#convIds.size, directPairs: this.#directs.size };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  // ---------------------------------------------------------------------------------------------
  // Internals

  #open(): void {
    if (this.#closed) throw new Error('PostgresStore is closed');
  }

  /** One row of EVENT_COLUMNS as the event it stores. */
  #decode(row: PgEventRow): ConversationEvent {
    return this.#codec.decode(row, eventContext(row));
  }

  #ready(): void {
    this.#open();
    if (!this.#initialized) throw new Error('PostgresStore is not initialised: call init() first');
  }

  async #userState(tenantId: string, userId: string): Promise<{ id: number; lastPos: number; firstPos: number } | undefined> {
    if (!isUuid(userId)) return undefined;
    const { rows } = await this.#pool.query<{ id: number; last_pos: string; first_pos: string | null }>({
      ...this.#sql.userState,
      values: [tenantId, userId],
    });
    const row = rows[0];
    if (row === undefined) return undefined;
    const lastPos = Number(row.last_pos);
    return { id: row.id, lastPos, firstPos: row.first_pos === null ? lastPos + 1 : Number(row.first_pos) };
  }

  async #currentMembers(client: pg.PoolClient, convs: readonly number[]): Promise<(CurrentMember & { conv: number })[]> {
    const { rows } = await client.query<{ conv: number; uid: number; uuid: string; role: number; joined_seq: string }>({
      ...this.#sql.currentMembers,
      values: [convs],
    });
    return rows.map((r) => ({ conv: r.conv, uid: r.uid, uuid: r.uuid, role: r.role, joinedSeq: Number(r.joined_seq) }));
  }

  /**
   * For the locked users whose acknowledged position alone may put them at `maxInboxSize` within
   * this transaction (`entries`: at most this many new entries each): where their backlog starts,
   * below the oldest entry retention kept (one query, only near the bound).
   */
  async #readBacklogFloors(client: pg.PoolClient, users: Map<number, LockedUser>, maxInboxSize: number, entries: number): Promise<void> {
    const atBound = [...users].filter(([, u]) => u.lastPos + entries - u.ackedPos >= maxInboxSize).map(([id]) => id);
    if (atBound.length === 0) return;
    const { rows } = await client.query<{ user: number; first_pos: string }>({ ...this.#sql.firstPositions, values: [atBound] });
    const first = new Map(rows.map((r) => [r.user, Number(r.first_pos)]));
    for (const id of atBound) {
      const u = users.get(id)!;
      u.floor = backlogFloor(u.ackedPos, first.get(id), u.lastPos);
    }
  }

  async #lockUsers(client: pg.PoolClient, ids: Iterable<number>): Promise<Map<number, LockedUser>> {
    const { rows } = await client.query<{ id: number; last_pos: string; acked_pos: string }>({
      ...this.#sql.lockUsers,
      values: [[...new Set(ids)]],
    });
    const users = new Map<number, LockedUser>();
    for (const row of rows) users.set(row.id, { lastPos: Number(row.last_pos), ackedPos: Number(row.acked_pos) });
    return users;
  }

  /** users.id of every (tenant, uuid), created when missing. Keys: key(tenant, lowercase uuid). */
  async #resolveUsers(tx: Tx, wanted: readonly (readonly [string, string])[]): Promise<Map<string, number>> {
    const ids = new Map<string, number>();
    const missing = new Map<string, [string, string]>();
    for (const [tenant, uuid] of wanted) {
      const lower = uuid.toLowerCase();
      const k = key(tenant, lower);
      if (ids.has(k) || missing.has(k)) continue;
      const id = this.#userIds.get(k) ?? tx.newUsers.get(k);
      if (id === undefined) missing.set(k, [tenant, lower]);
      else ids.set(k, id);
    }
    if (missing.size === 0) return ids;
    const columns = (): [string[], string[]] => {
      const tenants: string[] = [];
      const uuids: string[] = [];
      for (const [tenant, uuid] of missing.values()) {
        tenants.push(tenant);
        uuids.push(uuid);
      }
      return [tenants, uuids];
    };
    type Row = { id: number; tenant_id: string; user_id: string };
    // Committed rows: cached at once.
    const found = await tx.client.query<Row>({ ...this.#sql.findUsers, values: columns() });
    for (const row of found.rows) this.#found(ids, missing, row, this.#userIds);
    if (missing.size === 0) return ids;
    // Ours until COMMIT: cached only then.
    const inserted = await tx.client.query<Row>({ ...this.#sql.insertUsers, values: columns() });
    for (const row of inserted.rows) this.#found(ids, missing, row, tx.newUsers);
    if (missing.size === 0) return ids;
    // Created by another transaction that committed while ours waited on its unique key.
    const raced = await tx.client.query<Row>({ ...this.#sql.findUsers, values: columns() });
    for (const row of raced.rows) this.#found(ids, missing, row, this.#userIds);
    if (missing.size > 0) throw new Error('PostgresStore: a user row was neither created nor found');
    return ids;
  }

  #found(ids: Map<string, number>, missing: Map<string, unknown>, row: { id: number; tenant_id: string; user_id: string }, cache: Map<string, number>): void {
    const k = key(row.tenant_id, row.user_id);
    ids.set(k, row.id);
    missing.delete(k);
    if (cache === this.#userIds && cache.size >= this.#idCacheLimit) cache.clear();
    cache.set(k, row.id);
  }

  /** The direct conversation of every pair (direct_key → conversation), created with its members when missing. */
  async #resolveDirects(tx: Tx, wanted: Map<string, { tenant: string; at: number }>): Promise<Map<string, DirectConversation>> {
    const out = new Map<string, DirectConversation>();
    const missing = new Map<string, { tenant: string; at: number }>();
    for (const [k, v] of wanted) {
      const c = this.#directs.get(k) ?? tx.newDirects.get(k);
      if (c === undefined) missing.set(k, v);
      else out.set(k, c);
    }
    if (missing.size === 0) return out;
    type Row = { id: number; uuid: string; direct_key: string };
    const take = (rows: Row[], cache: Map<string, DirectConversation>) => {
      for (const row of rows) {
        const c = { id: row.id, uuid: row.uuid };
        out.set(row.direct_key, c);
        missing.delete(row.direct_key);
        if (cache === this.#directs && cache.size >= this.#idCacheLimit) cache.clear();
        cache.set(row.direct_key, c);
      }
    };
    take((await tx.client.query<Row>({ ...this.#sql.findDirect, values: [[...missing.keys()]] })).rows, this.#directs);
    if (missing.size === 0) return out;
    const keys = [...missing.keys()];
    const inserted = await tx.client.query<Row>({
      ...this.#sql.insertDirect,
      values: [keys.map(() => randomUUID()), keys.map((k) => missing.get(k)!.tenant), keys, keys.map((k) => missing.get(k)!.at)],
    });
    take(inserted.rows, tx.newDirects);
    if (missing.size === 0) return out;
    take((await tx.client.query<Row>({ ...this.#sql.findDirect, values: [[...missing.keys()]] })).rows, this.#directs);
    if (missing.size > 0) throw new Error('PostgresStore: a direct conversation was neither created nor found');
    return out;
  }

  /** A group change's transaction; a refused one is rolled back (refused-change.ts). */
  async #groupTransaction(work: (tx: Tx) => Promise<GroupChangeOutcome>): Promise<GroupChangeOutcome> {
    try {
      return await this.#transaction(async (tx) => {
        const outcome = await work(tx);
        if (isRefusedChange(outcome)) throw new RefusedChange(outcome);
        return outcome;
      });
    } catch (err) {
      if (err instanceof RefusedChange) return err.outcome;
      throw err;
    }
  }

  async #transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    let tx: Tx | undefined;
    const result = await inTransaction(this.#pool, (client) => {
      tx = { client, newUsers: new Map(), newDirects: new Map(), newWriters: new Set() };
      return work(tx);
    });
    // Only now (committed) are the rows this transaction created visible to others: cache their ids,
    // starting over at the bound as a lookup does (a node that creates every user it sees would
    // otherwise hold them all for good).
    if (this.#userIds.size + tx!.newUsers.size > this.#idCacheLimit) this.#userIds.clear();
    for (const [k, id] of tx!.newUsers) this.#userIds.set(k, id);
    if (this.#directs.size + tx!.newDirects.size > this.#idCacheLimit) this.#directs.clear();
    for (const [k, c] of tx!.newDirects) this.#directs.set(k, c);
    if (this.#writers.size + tx!.newWriters.size > WRITERS_CACHE_LIMIT) this.#writers.clear();
    for (const k of tx!.newWriters) this.#writers.add(k);
    return result;
  }
}

/** What a group change sees once the group is locked. */
interface GroupContext {
  client: pg.PoolClient;
  conv: number;
  conversationId: string;
  lastSeq: number;
  name: string | null;
  nameKeyId: string | null;
  /** Current members before the change. */
  members: CurrentMember[];
  actor: CurrentMember;
  uidOf(uuid: string): number;
  /** Append the event (seq lastSeq + 1) with `w`'s member changes and deliver it to `recipients`. */
  commit(
    w: WriteSet,
    users: Map<number, LockedUser>,
    fields: Partial<MembershipEvent>,
    recipients: readonly [number, string][],
  ): Promise<GroupChangeOutcome>;
}
