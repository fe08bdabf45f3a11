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
 *
 * This file holds the Store methods, the caches and the write transaction; the rest is beside it:
 * sqlite-migrations.ts (schema), sqlite-statements.ts and sqlite-rows.ts (SQL and its rows),
 * sqlite-ids.ts (id caches), sqlite-append.ts (the message path), sqlite-group-changes.ts,
 * sqlite-message-changes.ts (edits, deletes), sqlite-timeline.ts (timeline writer), sqlite-retention.ts.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { Database } from './sqlite-driver.js';
import type { ContentCipher } from './content-cipher.js';
import { CommittedCache } from './committed-cache.js';
import { EventCodec, KIND_DIRECT, KIND_GROUP, roleName } from './message-codec.js';
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
  SyncState,
  AckResult,
  ConversationReceipts,
  DeleteMessageRequest,
  EditMessageRequest,
  MessageEditEvent,
  MessageChangeOptions,
  MessageChangeOutcome,
  ReadResult,
  TimelinePage,
} from './store.js';
import { bytesToUuid, isUuid, uuidToBytes, uuidV7LowerBound } from './uuid-bytes.js';
import { decodeListCursor, encodeListCursor } from './list-cursor.js';
import type { MembershipBound } from './inbox-bound.js';
import { isRefusedChange, RefusedChange } from './refused-change.js';
import { asSeenByFormerMember, formerMemberPage, seenUntil } from './former-member-view.js';
import { migrate, resealGroupNames } from './sqlite-migrations.js';
import { clampLimit, eventContext, toEventRow, EVENT_COLUMNS, type ConvInfo, type ListRow, type RawEventRow, type Recipient } from './sqlite-rows.js';
import { prepareFeatures, prepareStatements, type FeatureStatements, type Statements } from './sqlite-statements.js';
import { SqliteIds } from './sqlite-ids.js';
import { TimelineWriter } from './sqlite-timeline.js';
import { appendBatch, COUNTER_CACHE_LIMIT, type AppendContext } from './sqlite-append.js';
import { SqliteGroupChanges, type GroupChangeContext } from './sqlite-group-changes.js';
import { changeMessage, type MessageChangeContext } from './sqlite-message-changes.js';
import { prepareRetention, pruneOlderThan, pruneSliceOf, type PruneSlice, type RetentionStatements } from './sqlite-retention.js';

export { SQLITE_MIGRATIONS } from './sqlite-migrations.js';
export type { RawEventRow } from './sqlite-rows.js';

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

/**
 * Members (over all cached lists) the members cache may hold before it starts over: bounds its
 * memory (~115 bytes a member) whatever the group sizes, ~115 MB at most.
 */
const MEMBERS_CACHE_LIMIT = 1_000_000;

const lower = (id: string): string => id.toLowerCase();

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
  #r: RetentionStatements | undefined;
  /** Integer ids of users and conversations, cached once committed. */
  readonly #ids: SqliteIds;
  /**
   * Committed counters (users.last_pos/acked_pos, conversations.last_seq/last_at/closed), so a
   * batch need not read them again. Valid only while no other connection commits: every write
   * transaction compares `PRAGMA data_version` first and starts over when it moved. Every other
   * write of this connection drops them (see #write).
   */
  readonly #userCounters = new Map<number, { last: number; acked: number }>();
  readonly #convCounters = new Map<number, { lastSeq: number; lastAt: number; closed: boolean }>();
  #dataVersion = -1;
  /** Conversation → the members known to have written in it (see noteWrote in sqlite-append.ts): committed, and never going back. */
  readonly #writers = new CommittedCache<number, Set<number>>(COUNTER_CACHE_LIMIT);
  /**
   * Current members per conversation, in `currentMembers` order. A receipt of a group goes to its
   * other members and a group message to all of them: without this, every receipt and every batch
   * re-read, re-sorted and re-converted the whole list (the largest cost of a 100-member group).
   * Valid while no other connection commits (`PRAGMA data_version`, compared on every use) and no
   * write of ours that may change membership ran (#write drops it after each).
   */
  readonly #membersCache = new CommittedCache<number, readonly Recipient[]>(MEMBERS_CACHE_LIMIT, (members) => members.length);
  /** The timeline entries of the running transaction, and when to move timeline_recent's. */
  readonly #timeline: TimelineWriter;
  /** Cache fills made inside the running transaction: applied only once it commits. */
  #pending: (() => void)[] | undefined;
  /** Runs a #write's function in BEGIN IMMEDIATE … COMMIT, with the timeline entries it queued. */
  #transaction: BetterSqlite3.Transaction<(fn: () => unknown) => unknown> | undefined;
  /** What the write paths in other modules use of the store (sqlite-append.ts, sqlite-group-changes.ts, sqlite-message-changes.ts). */
  readonly #writeContext: AppendContext & GroupChangeContext & MessageChangeContext;
  readonly #groups: SqliteGroupChanges;

  /** `path` is a file path (its directory must exist) or ':memory:'. */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.#path = path;
    this.#options = options;
    this.#ids = new SqliteIds(options.idCacheLimit, (apply) => this.#remember(apply));
    this.#pruneSlice = pruneSliceOf(options.pruneSlice);
    this.#codec = new EventCodec(options.cipher);
    this.#timeline = new TimelineWriter(options.timelineBatch);
    this.#writeContext = {
      codec: this.#codec,
      ids: this.#ids,
      appendTimeline: (user, pos, conv, seq) => this.#appendTimeline(user, pos, conv, seq),
      forgetWriters: (conv) => this.#remember(() => this.#writers.delete(conv)),
      decode: (s, convId, raw) => this.#decode(s, convId, raw),
      remember: (apply) => this.#remember(apply),
      members: (s, convId) => this.#members(s, convId),
      userCounters: this.#userCounters,
      convCounters: this.#convCounters,
      writers: this.#writers,
    };
    this.#groups = new SqliteGroupChanges(this.#writeContext);
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
      const s = prepareStatements(db);
      this.#s = s;
      this.#r = prepareRetention(db);
      this.#f = prepareFeatures(db, EVENT_COLUMNS);
      // Built once: better-sqlite3 makes a wrapper (and its begin/commit variants) per transaction().
      this.#transaction = db.transaction((fn: () => unknown): unknown => {
        // Another connection (process) committed since we last looked: our counters may be stale.
        const version = s.dataVersion.get()!;
        if (version !== this.#dataVersion) {
          this.#userCounters.clear();
          this.#convCounters.clear();
          this.#timeline.recount(s);
          this.#dataVersion = version;
        }
        const out = fn();
        this.#timeline.write(s);
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
    if (acks.length === 0) return this.#write(() => appendBatch(this.#writeContext, s, this.#f!, batch, options.maxInboxSize), true);
    let ackResults: AckResult[];
    let outcomes: AppendOutcome[];
    try {
      [ackResults, outcomes] = this.#write(() => [this.#applyAcks(s, acks, true), appendBatch(this.#writeContext, s, this.#f!, batch, options.maxInboxSize)] as const, true);
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
    return this.#groupWrite(() => this.#groups.createGroup(s, r, limits));
  }

  /** `limits.maxInboxSize`: see MembershipBound (inbox-bound.ts), as for the four changes below. */
  async addMembers(request: AddMembersRequest, limits: GroupLimits & MembershipBound): Promise<GroupChangeOutcome> {
    const s = this.#ready();
    const r = { ...request, actorId: lower(request.actorId), userIds: request.userIds.map(lower) };
    return this.#groupWrite(() => this.#groups.addMembers(s, r, limits));
  }

  async removeMembers(request: RemoveMembersRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    const s = this.#ready();
    const r = { ...request, actorId: lower(request.actorId), userIds: request.userIds.map(lower) };
    return this.#groupWrite(() => this.#groups.removeMembers(s, r, bound));
  }

  async leaveGroup(request: LeaveGroupRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    const s = this.#ready();
    const r = { ...request, actorId: lower(request.actorId) };
    return this.#groupWrite(() => this.#groups.leaveGroup(s, r, bound));
  }

  async renameGroup(request: RenameGroupRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    const s = this.#ready();
    const r = { ...request, actorId: lower(request.actorId) };
    return this.#groupWrite(() => this.#groups.renameGroup(s, r, bound));
  }

  async setRole(request: SetRoleRequest, bound: MembershipBound = {}): Promise<GroupChangeOutcome> {
    const s = this.#ready();
    const r = { ...request, actorId: lower(request.actorId), userId: lower(request.userId) };
    return this.#groupWrite(() => this.#groups.setRole(s, r, bound));
  }

  async directConversationId(tenantId: string, userId: string, peerId: string): Promise<string | undefined> {
    const s = this.#ready();
    const user = this.#ids.userId(s, tenantId, userId, false);
    const peer = this.#ids.userId(s, tenantId, peerId, false);
    if (user === undefined || peer === undefined) return undefined;
    const id = this.#ids.directId(s, user, peer);
    return id === undefined ? undefined : this.#ids.convInfoById(s, id).uuid;
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
    return { members, sharing: members.filter((u) => writers.has(this.#ids.userId(s, tenantId, u, false)!)), positions };
  }

  async membersIfMember(tenantId: string, conversationId: string, userId: string, options: { formerToo?: boolean } = {}): Promise<string[] | undefined> {
    const s = this.#ready();
    const conv = options.formerToo === true ? this.#formerMembership(s, tenantId, conversationId, userId) : this.#currentMembership(s, tenantId, conversationId, userId)?.conv;
    return conv === undefined ? undefined : this.#members(s, conv).map((r) => r.uuid);
  }

  /** The conversation's id if the user is or was a member of it. */
  #formerMembership(s: Statements, tenantId: string, conversationId: string, userId: string): number | undefined {
    const conv = this.#ids.conv(s, tenantId, conversationId);
    const user = this.#ids.userId(s, tenantId, userId, false);
    return conv === undefined || user === undefined || s.membership.get(conv.id, user) === undefined ? undefined : conv.id;
  }

  /** The user's membership row of the conversation, if they are a current member. */
  #currentMembership(s: Statements, tenantId: string, conversationId: string, userId: string) {
    const conv = this.#ids.conv(s, tenantId, conversationId);
    const user = this.#ids.userId(s, tenantId, userId, false);
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
    const user = this.#ids.userId(s, tenantId, userId, false);
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
      const user = this.#ids.userId(s, tenantId, userId, false);
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
    const user = this.#ids.userId(s, tenantId, userId, false);
    let conv: ConvInfo | undefined;
    if ('peerId' in ref) {
      const peer = this.#ids.userId(s, tenantId, ref.peerId, false);
      if (user === undefined || peer === undefined) return { events: [] };
      const id = this.#ids.directId(s, user, peer);
      if (id === undefined) return { events: [] };
      conv = this.#ids.convInfoById(s, id);
    } else {
      conv = this.#ids.conv(s, tenantId, ref.conversationId);
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
    const user = this.#ids.userId(s, tenantId, userId, false);
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
      const conv = this.#ids.conv(s, tenantId, conversationId);
      const user = this.#ids.userId(s, tenantId, userId, false);
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
      const user = this.#ids.userId(s, tenantId, userId, false);
      if (user === undefined) return { position: 0, delivered: [] };
      const c = s.userCounters.get(user)!;
      const target = Math.max(0, Math.min(Number.isFinite(upTo) ? Math.floor(upTo) : 0, c.last_pos));
      const delivered: AckResult['delivered'] = [];
      if (target > c.acked_pos) {
        s.setUserAcked.run(target, user);
        if (beforeMessages) this.#userCounters.delete(user);
        else this.#rememberAcked(user, target);
        for (const row of f.advanceDelivered.all({ user, from: c.acked_pos, to: target })) {
          delivered.push({ conversationId: this.#ids.convInfoById(s, row.conv).uuid, delivered: row.delivered_seq });
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
    const user = this.#ids.userId(s, tenantId, userId, false);
    if (user === undefined) return out;
    const privacy = this.#options.strangerPrivacy === false ? 0 : 1;
    this.#db!.transaction(() => {
      for (const id of conversationIds) {
        const conv = this.#ids.conv(s, tenantId, id);
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
    return this.#write(() => changeMessage(this.#writeContext, s, this.#f!, request, options, 'edit'));
  }

  async deleteMessage(request: DeleteMessageRequest, options: MessageChangeOptions): Promise<MessageChangeOutcome> {
    const s = this.#ready();
    const outcome = this.#write(() => changeMessage(this.#writeContext, s, this.#f!, request, options, 'delete'));
    // Erased means gone from the files too: move the rewritten pages out of the WAL now.
    if (outcome.status === 'ok') this.#f!.checkpoint.run();
    return outcome;
  }

  async contactsOf(tenantId: string, userId: string): Promise<string[]> {
    const s = this.#ready();
    const user = this.#ids.userId(s, tenantId, userId, false);
    if (user === undefined) return [];
    return this.#f!.contacts.all(user, this.#options.strangerPrivacy === false ? 0 : 1).map(bytesToUuid);
  }

  async setPresenceVisible(tenantId: string, userId: string, visible: boolean): Promise<void> {
    const s = this.#ready();
    this.#write(() => this.#f!.setPresence.run(visible ? 1 : 0, this.#ids.userId(s, tenantId, userId, true)), true);
  }

  async presenceSettings(tenantId: string, userIds: readonly string[]): Promise<Map<string, boolean>> {
    const s = this.#ready();
    const out = new Map<string, boolean>();
    for (const u of userIds) {
      const id = this.#ids.userId(s, tenantId, u, false);
      if (id === undefined) continue;
      const v = this.#f!.presenceOf.get(id);
      if (v !== null && v !== undefined) out.set(u, v !== 0);
    }
    return out;
  }


  /** Retention, in slices a turn of the event loop apart (sqlite-retention.ts). */
  async pruneOlderThan(olderThan: number): Promise<number> {
    const bound = uuidToBytes(uuidV7LowerBound(olderThan));
    const oldTs = Math.floor(olderThan);
    const db = this.#db;
    this.#ready();
    return pruneOlderThan(
      {
        // The temp table belongs to this connection: stop if the store was closed (or reopened) meanwhile.
        statements: () => (this.#db === db ? this.#r : undefined),
        write: (fn, keepCounters) => this.#write(fn, keepCounters),
        checkpoint: () => this.#f!.checkpoint.run(),
        slice: this.#pruneSlice,
      },
      bound,
      oldTs,
    );
  }

  async ping(): Promise<void> {
    this.#ready().ping.get();
  }

  /** How many ids the caches hold (bounded by `idCacheLimit`; for tests and diagnostics). */
  cachedIds(): { users: number; conversations: number; directPairs: number } {
    return this.#ids.counts();
  }

  async close(): Promise<void> {
    // Acks accepted before the close are written, not dropped.
    if (this.#db !== undefined) this.#flushAcks();
    const db = this.#db;
    this.#db = undefined;
    this.#s = undefined;
    this.#f = undefined;
    this.#r = undefined;
    this.#transaction = undefined;
    this.#ids.clear();
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

  /**
   * One BEGIN IMMEDIATE transaction; cache fills it made apply only after COMMIT. `keepCounters`
   * true only for writes that move no cached counter (`last_pos`, a conversation's `last_seq`,
   * `last_at`, `closed`) or keep the cache in step themselves: appendMessages, acks (which update
   * the cached `acked_pos`), read positions, the presence setting. The rest — group changes,
   * edits, deletes, prune — drop the cache after them rather than trusting each path to update it.
   * (Acks dropped it too, until the relay's counter re-reads after every ack showed in profiles.)
   */
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
      this.#timeline.discard();
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

  /** Queue a timeline entry of the running transaction (written by TimelineWriter.write before COMMIT). */
  #appendTimeline(user: number, pos: number, conv: number, seq: number): void {
    if (this.#pending === undefined) throw new Error('timeline entries are written inside #write only');
    this.#timeline.queue(user, pos, conv, seq);
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


  #decode(s: Statements, convId: number, raw: RawEventRow): ConversationEvent {
    return this.#codec.decode(toEventRow(raw), eventContext(this.#ids.convInfoById(s, convId)));
  }

  #summary(s: Statements, user: number, userId: string, row: ListRow, allHistory: boolean): ConversationSummary {
    const info = this.#ids.convInfoById(s, row.id);
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
    if (last !== undefined) summary.lastMessage = this.#codec.decodeMessage(toEventRow(last), eventContext(info));
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

  /**
   * The members who have written in a conversation (cached once read: see noteWrote in sqlite-append.ts). For reading
   * it must be complete: started over whenever another connection has committed since.
   */
  #writersOf(s: Statements, conv: number): ReadonlySet<number> {
    return this.#writers.read(s.dataVersion.get()!, conv, () => new Set(this.#f!.writersOf.all(conv)));
  }
}
