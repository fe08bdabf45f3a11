/**
 * The SQLite store's message path: a batch of new messages decided and written inside one write
 * transaction (dedupe, membership and inbox-bound checks, one event per message, a timeline entry
 * per recipient), each user's and conversation's counters read once and written once.
 */
import { randomUUID } from 'node:crypto';
import type { CommittedCache } from './committed-cache.js';
import { EVENT_MESSAGE, KIND_DIRECT, ROLE_MEMBER, directKey, type EventCodec } from './message-codec.js';
import type { AppendOutcome, Delivery, NewMessage, StoredMessage } from './store.js';
import { atInboxBound, backlogFloor } from './inbox-bound.js';
import type { SqliteIds } from './sqlite-ids.js';
import { eventContext, replyToColumn, toEventRow, type ConvInfo, type RawEventRow, type Recipient } from './sqlite-rows.js';
import type { FeatureStatements, Statements } from './sqlite-statements.js';
import { uuidToBytes } from './uuid-bytes.js';
import { APPEND_FORBIDDEN, APPEND_INBOX_FULL } from './change-outcomes.js';

/** Entries each counter cache may hold before it starts over (bounds memory only). */
export const COUNTER_CACHE_LIMIT = 100_000;


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

/** What the message path needs of the store: its id caches, its committed caches, its transaction's queues. */
export interface AppendContext {
  readonly codec: EventCodec;
  readonly ids: SqliteIds;
  /** Queue a timeline entry of the running transaction. */
  appendTimeline(user: number, pos: number, conv: number, seq: number): void;
  /** Run a cache fill after COMMIT. */
  remember(apply: () => void): void;
  /** The conversation's current members (the store's members cache). */
  members(s: Statements, convId: number): readonly Recipient[];
  /** Committed counters (SqliteStore): read instead of the rows when present, refilled after COMMIT. */
  readonly userCounters: Map<number, { last: number; acked: number }>;
  readonly convCounters: Map<number, { lastSeq: number; lastAt: number; closed: boolean }>;
  /** Conversation → the members known to have written in it (see noteWrote). */
  readonly writers: CommittedCache<number, Set<number>>;
}

/** Runs inside the transaction. Counters are read once per user/conversation and written once. */
export function appendBatch(ctx: AppendContext, s: Statements, features: FeatureStatements, batch: readonly NewMessage[], maxInboxSize: number): AppendOutcome[] {
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
  const senders = batch.map((m) => ctx.ids.userId(s, m.tenantId, m.senderId, true));
  /** Conversations of this batch: who has written in each (see noteWrote), and the members to mark. */
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
      const cached = ctx.userCounters.get(id);
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
      const cached = ctx.convCounters.get(id);
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
        const info = ctx.ids.convInfoById(s, first.conv);
        out[i] = { status: 'duplicate', message: ctx.codec.decodeDuplicate(toEventRow(first), eventContext(info)) };
        continue;
      }
    }

    let info: ConvInfo;
    let recipients: readonly Recipient[];
    if ('peerId' in m.to) {
      const peerUuid = m.to.peerId;
      const peer = ctx.ids.userId(s, tenant, peerUuid, true);
      if (peer !== sender) {
        if (full(counters(peer))) {
          out[i] = APPEND_INBOX_FULL;
          continue;
        }
      }
      info = findOrCreateDirect(ctx, s, tenant, { id: sender, uuid: m.senderId }, { id: peer, uuid: peerUuid }, m.timestamp);
      recipients = peer === sender ? [{ id: sender, uuid: m.senderId }] : [{ id: sender, uuid: m.senderId }, { id: peer, uuid: peerUuid }];
    } else {
      const found = ctx.ids.conv(s, tenant, m.to.conversationId);
      if (found === undefined || convCounters(found.id).closed) {
        out[i] = APPEND_FORBIDDEN;
        continue;
      }
      info = found;
      if (found.kind === KIND_DIRECT) {
        // A direct conversation named by its id: the sender must be one of its (one or two) members.
        const ids = (found.directMembers ?? []).map((u) => ({ id: ctx.ids.userId(s, tenant, u, true), uuid: u }));
        if (!ids.some((r) => r.id === sender)) {
          out[i] = APPEND_FORBIDDEN;
          continue;
        }
        const peer = ids.find((r) => r.id !== sender);
        if (peer !== undefined) {
          if (full(counters(peer.id))) {
            out[i] = APPEND_INBOX_FULL;
            continue;
          }
        }
        recipients = peer === undefined ? [{ id: sender, uuid: m.senderId }] : [{ id: sender, uuid: m.senderId }, peer];
      } else {
        let members = groupMembers.get(info.id);
        if (members === undefined) {
          members = ctx.members(s, info.id);
          groupMembers.set(info.id, members);
        }
        if (!members.some((r) => r.id === sender)) {
          out[i] = APPEND_FORBIDDEN;
          continue;
        }
        recipients = members;
      }
    }

    const cc = convCounters(info.id);
    const seq = cc.lastSeq + 1;
    const f = ctx.codec.encodeMessage(m);
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
      ctx.appendTimeline(r.id, uc.last, info.id, seq);
      deliveries.push({ userId: r.uuid, pos: uc.last });
    }
    if (noteWrote(ctx, features, info.id, sender, (wrote ??= new Map()), wroteRows)) wroteBy.push(i);
    const message = ctx.codec.storedMessage(m, eventContext(info), seq);
    out[i] = { status: 'stored', message, deliveries };
    if (batchKey !== undefined) (storedKeys ??= new Map()).set(batchKey, message);
  }
  s.insertEventRows.run(eventRows);
  if (wrote !== undefined) {
    for (let i = 0; i < wroteRows.length; i += 2) {
      // Changed a row: the sender had not written there before (the flag never goes back).
      if (features.setWrote.run(wroteRows[i]!, wroteRows[i + 1]!).changes > 0) (out[wroteBy[i / 2]!] as { firstWrite?: true }).firstWrite = true;
    }
    const known = wrote;
    ctx.remember(() => {
      for (const [conv, writers] of known) ctx.writers.set(conv, writers);
    });
  }
  const userRows: number[] = [];
  for (const c of users.values()) if (c.dirty) userRows.push(c.id, c.last);
  s.setLastPosRows.run(userRows);
  const convRows: number[] = [];
  for (const [id, c] of convs) if (c.dirty) convRows.push(id, c.lastSeq, c.lastAt);
  s.setConvCounterRows.run(convRows);
  ctx.remember(() => {
    if (ctx.userCounters.size + users.size > COUNTER_CACHE_LIMIT) ctx.userCounters.clear();
    if (ctx.convCounters.size + convs.size > COUNTER_CACHE_LIMIT) ctx.convCounters.clear();
    for (const c of users.values()) ctx.userCounters.set(c.id, { last: c.last, acked: c.acked });
    for (const [id, c] of convs) ctx.convCounters.set(id, { lastSeq: c.lastSeq, lastAt: c.lastAt, closed: c.closed });
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
function noteWrote(ctx: AppendContext, features: FeatureStatements, conv: number, sender: number, batch: Map<number, Set<number>>, rows: number[]): boolean {
  let writers = batch.get(conv);
  if (writers === undefined) {
    const known = ctx.writers.peek(conv);
    if (known !== undefined && known.has(sender)) return false;
    writers = new Set(known ?? features.writersOf.all(conv));
    batch.set(conv, writers);
  }
  if (writers.has(sender)) return false;
  writers.add(sender);
  rows.push(conv, sender);
  return true;
}

/** The direct conversation of a and b, created (with its members) when they have none yet. */
function findOrCreateDirect(ctx: AppendContext, s: Statements, tenantId: string, a: Recipient, b: Recipient, ts: number): ConvInfo {
  const existing = ctx.ids.directId(s, a.id, b.id);
  if (existing !== undefined) return ctx.ids.convInfoById(s, existing);
  const uuid = randomUUID();
  const key = directKey(a.id, b.id);
  const id = Number(s.insertConv.run(uuidToBytes(uuid), tenantId, KIND_DIRECT, key, null, null, ts, ts).lastInsertRowid);
  const members = a.id === b.id ? [a] : [a, b].sort((x, y) => x.id - y.id);
  for (const r of members) s.upsertMember.run(id, r.id, ROLE_MEMBER, 1);
  const info: ConvInfo = { id, uuid, tenantId, kind: KIND_DIRECT, directMembers: members.map((r) => r.uuid) };
  ctx.ids.cacheConv(info);
  ctx.ids.cacheDirect(key, id);
  return info;
}
