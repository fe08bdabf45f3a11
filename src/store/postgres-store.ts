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
 *
 * This file is the adapter's map: options, wiring, start-up (migrations, resealing group names)
 * and the Store methods, most of them one statement. Its parts: pg-store-sql.ts and
 * pg-features-sql.ts (statements), pg-append.ts (the message path), pg-group-changes.ts,
 * pg-message-change.ts (edits and deletes), pg-retention.ts (the prune), pg-id-caches.ts,
 * pg-locked-rows.ts, pg-write-set.ts and pg-values.ts.
 */
import pg from 'pg';
import { isKeyError, type ContentCipher } from './content-cipher.js';
import { EventCodec, KIND_DIRECT, KIND_GROUP, roleName } from './message-codec.js';
import { eventContext, type PgEventRow } from './pg-event-sql.js';
import { buildFeatureSql } from './pg-features-sql.js';
import { MIGRATIONS } from './pg-migrations.js';
import { inTransaction, NO_QUERY_TIMEOUT, withQueryTimeout } from './pg-transaction.js';
import { appendBatch, type AppendContext } from './pg-append.js';
import { PgGroupChanges, type GroupChangeContext } from './pg-group-changes.js';
import { CACHE_LIMIT, PgIdCaches, type Tx } from './pg-id-caches.js';
import { changeMessage, type MessageChangeContext } from './pg-message-change.js';
import { pruneEvents } from './pg-retention.js';
import { buildSql, type FeatureSql, type StoreSql } from './pg-store-sql.js';
import { isUuid, pgText } from './pg-values.js';
import { decodeListCursor, encodeListCursor } from './list-cursor.js';
import type { MembershipBound } from './inbox-bound.js';
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
  GroupChangeOutcome,
  GroupLimits,
  HistoryPage,
  HistoryQuery,
  LeaveGroupRequest,
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

export class PostgresStore implements Store {
  readonly #pool: pg.Pool;
  readonly #schema: string;
  readonly #codec: EventCodec;
  /** See store.ts Audience. */
  readonly #strangerPrivacy: boolean;
  readonly #maxDevices: number;
  readonly #sql: StoreSql;
  readonly #fsql: FeatureSql;
  readonly #t: (table: string) => string;
  readonly #ids: PgIdCaches;
  /** What the parts in other files need of the store (their contexts: AppendContext and the like). */
  readonly #parts: AppendContext & GroupChangeContext & MessageChangeContext;
  readonly #groups: PgGroupChanges;
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
    this.#maxDevices = options.maxDevicesPerUser ?? MAX_DEVICES_PER_USER;
    const texts = buildSql(this.#t);
    // Statement names are per connection: include the schema so two stores may share a server.
    this.#sql = Object.fromEntries(
      Object.entries(texts).map(([name, text]) => [name, { name: `rampart2_${schema}_${name}`, text }]),
    ) as StoreSql;
    this.#fsql = Object.fromEntries(
      Object.entries(buildFeatureSql(this.#t)).map(([name, text]) => [name, { name: `rampart3_${schema}_${name}`, text }]),
    ) as FeatureSql;
    this.#ids = new PgIdCaches(this.#sql, options.idCacheLimit ?? CACHE_LIMIT);
    this.#parts = { codec: this.#codec, sql: this.#sql, fsql: this.#fsql, ids: this.#ids, transaction: (work) => this.#transaction(work) };
    this.#groups = new PgGroupChanges(this.#parts);
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
    return this.#transaction((tx) => appendBatch(this.#parts, tx, batch, options.maxInboxSize));
  }

  // ---------------------------------------------------------------------------------------------
  // Groups (pg-group-changes.ts)

  async createGroup(request: CreateGroupRequest, limits: GroupLimits): Promise<GroupChangeOutcome> {
    this.#ready();
    return this.#groups.createGroup(request, limits);
  }

  /** `limits.maxInboxSize`: see MembershipBound (inbox-bound.ts), as for the four changes below. */
  async addMembers(request: AddMembersRequest, limits: GroupLimits & MembershipBound): Promise<GroupChangeOutcome> {
    this.#ready();
    return this.#groups.addMembers(request, limits);
  }

  async removeMembers(request: RemoveMembersRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    this.#ready();
    return this.#groups.removeMembers(request, bound);
  }

  async leaveGroup(request: LeaveGroupRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    this.#ready();
    return this.#groups.leaveGroup(request, bound);
  }

  async renameGroup(request: RenameGroupRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    this.#ready();
    return this.#groups.renameGroup(request, bound);
  }

  async setRole(request: SetRoleRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    this.#ready();
    return this.#groups.setRole(request, bound);
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  async directConversationId(tenantId: string, userId: string, peerId: string): Promise<string | undefined> {
    this.#ready();
    return this.#ids.directConversationId(this.#pool, tenantId, userId, peerId);
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
    return changeMessage(this.#parts, request, options, 'edit');
  }

  async deleteMessage(request: DeleteMessageRequest, options: MessageChangeOptions): Promise<MessageChangeOutcome> {
    this.#ready();
    return changeMessage(this.#parts, request, options, 'delete');
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

  async pruneOlderThan(olderThan: number): Promise<number> {
    this.#ready();
    return this.#transaction(({ client }) => pruneEvents(client, this.#sql.prune, olderThan));
  }

  async ping(): Promise<void> {
    this.#open();
    await this.#pool.query('SELECT 1');
  }

  /** How many ids the caches hold (bounded by `idCacheLimit`; for tests and diagnostics). */
  cachedIds(): { users: number; conversations: number; directPairs: number } {
    return this.#ids.sizes();
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

  async #transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    let tx: Tx | undefined;
    const result = await inTransaction(this.#pool, (client) => {
      tx = { client, newUsers: new Map(), newDirects: new Map(), newWriters: new Set() };
      return work(tx);
    });
    // Only now (committed) are the rows this transaction created visible to others: cache their ids,
    // starting over at the bound as a lookup does (a node that creates every user it sees would
    // otherwise hold them all for good).
    this.#ids.committed(tx!);
    return result;
  }
}
