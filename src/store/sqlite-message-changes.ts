/**
 * Edits and deletes of stored messages for the SQLite store: inside the store's write
 * transaction, the checks (sender, moderator, edit window, dedupe), the event appended, the
 * message's stored body rewritten or erased, and a timeline entry per member it reaches.
 */
import { EVENT_DELETE, EVENT_EDIT, EVENT_MESSAGE, EVENT_TOMBSTONE, KIND_GROUP, ROLE_ADMIN, ROLE_OWNER, type EventCodec } from './message-codec.js';
import type {
  ConversationEvent,
  DeleteMessageRequest,
  Delivery,
  EditMessageRequest,
  MessageChangeEvent,
  MessageChangeOptions,
  MessageChangeOutcome,
  StoredMessage,
} from './store.js';
import { atInboxBound, backlogFloor } from './inbox-bound.js';
import type { SqliteIds } from './sqlite-ids.js';
import { eventContext, toEventRow, type RawEventRow } from './sqlite-rows.js';
import type { FeatureStatements, Statements } from './sqlite-statements.js';
import { bytesToUuid, isUuid, uuidToBytes } from './uuid-bytes.js';
import { MESSAGE_FORBIDDEN } from './change-outcomes.js';


/** What an edit or delete needs of the store. */
export interface MessageChangeContext {
  readonly codec: EventCodec;
  readonly ids: SqliteIds;
  /** Queue a timeline entry of the running transaction. */
  appendTimeline(user: number, pos: number, conv: number, seq: number): void;
  /** A stored event as its conversation's members see it. */
  decode(s: Statements, convId: number, raw: RawEventRow): ConversationEvent;
}

/** Edit or delete inside the write transaction (see `MessageChangeOutcome`). */
export function changeMessage(
  store: MessageChangeContext,
  s: Statements,
  f: FeatureStatements,
  r: EditMessageRequest | DeleteMessageRequest,
  o: MessageChangeOptions,
  what: 'edit' | 'delete',
): MessageChangeOutcome {
  const actor = store.ids.userId(s, r.tenantId, r.actorId, false);
  if (actor === undefined || !isUuid(r.messageId)) return MESSAGE_FORBIDDEN;
  if (r.clientMsgId !== undefined) {
    const first = s.findDuplicateRows.all<RawEventRow & { conv: number }>([r.clientMsgId, actor])[0];
    if (first !== undefined) {
      const ctx = eventContext(store.ids.convInfoById(s, first.conv));
      return { status: 'duplicate', event: store.codec.decodeDuplicateEvent(toEventRow(first), ctx) as MessageChangeEvent | StoredMessage };
    }
  }
  const row = f.eventById.get(uuidToBytes(r.messageId));
  if (row === undefined) return MESSAGE_FORBIDDEN;
  const info = store.ids.convInfoById(s, row.conv);
  if (info.tenantId !== r.tenantId || (row.kind !== EVENT_MESSAGE && row.kind !== EVENT_TOMBSTONE)) return MESSAGE_FORBIDDEN;
  const state = s.convState.get(info.id)!;
  const me = s.membership.get(info.id, actor);
  if (me === undefined || me.left_seq !== null || state.closed !== 0) return MESSAGE_FORBIDDEN;
  const own = row.sender_int === actor;
  if (what === 'edit') {
    const window = o.editWindowMs ?? 0;
    if (!own || row.kind !== EVENT_MESSAGE || window <= 0 || r.timestamp - row.ts > window) return MESSAGE_FORBIDDEN;
  } else {
    const moderator = info.kind === KIND_GROUP && (me.role === ROLE_OWNER || me.role === ROLE_ADMIN);
    if (!own && !moderator) return MESSAGE_FORBIDDEN;
    if (row.kind === EVENT_TOMBSTONE) return { status: 'unchanged', message: store.decode(s, info.id, row) as StoredMessage };
  }
  const seq = state.last_seq + 1;
  const messageBytes = uuidToBytes(r.messageId);
  if (what === 'edit') {
    const body = (r as EditMessageRequest).body;
    const e = store.codec.encodeEdit(r.eventId, body);
    s.insertEvent.run(info.id, seq, uuidToBytes(r.eventId), EVENT_EDIT, actor, e.content, e.keyId, messageBytes, e.attachments, e.mentions, e.hashtags, e.links, r.timestamp, r.clientMsgId ?? null);
    const old = store.decode(s, info.id, row) as StoredMessage;
    const m = store.codec.encodeBody(r.messageId, { ...body, ...(old.attachments !== undefined ? { attachments: old.attachments } : {}) });
    f.setBody.run(m.content, m.keyId, m.attachments, m.mentions, m.hashtags, m.links, r.timestamp, info.id, row.seq);
  } else {
    s.insertEvent.run(info.id, seq, uuidToBytes(r.eventId), EVENT_DELETE, actor, '', null, messageBytes, null, '[]', '[]', '[]', r.timestamp, r.clientMsgId ?? null);
    f.tombstone.run(store.codec.tombstoneContent(r.timestamp, r.actorId), info.id, row.seq);
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
    store.appendTimeline(m.user, pos, info.id, seq);
    s.setLastPos.run(pos, m.user);
    deliveries.push({ userId: bytesToUuid(m.user_id), pos });
  }
  const eventRow = f.eventById.get(uuidToBytes(r.eventId))!;
  const message = store.decode(s, info.id, f.eventById.get(messageBytes)!) as StoredMessage;
  return { status: 'ok', event: store.decode(s, info.id, eventRow) as MessageChangeEvent, message, deliveries };
}
