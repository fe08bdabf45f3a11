/**
 * Edits and deletes on PostgreSQL: the message's row locked first, then its conversation and the
 * members' user rows (postgres-store.ts module comment: lock order); the change event stored, the
 * message's body replaced or tombstoned, and the event delivered to the members it reaches.
 */
import type pg from 'pg';
import { atInboxBound } from './inbox-bound.js';
import { EVENT_DELETE, EVENT_EDIT, EVENT_MESSAGE, EVENT_TOMBSTONE, KIND_GROUP, ROLE_ADMIN, ROLE_OWNER, type EventCodec } from './message-codec.js';
import { eventContext, type PgEventRow } from './pg-event-sql.js';
import type { Tx } from './pg-id-caches.js';
import { currentMembers, lockUsers, readBacklogFloors } from './pg-locked-rows.js';
import type { FeatureSql, FeatureSqlName, StoreSql } from './pg-store-sql.js';
import { isUuid, pgText } from './pg-values.js';
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
import { MESSAGE_FORBIDDEN } from './change-outcomes.js';


/** What edits and deletes need of the store. */
export interface MessageChangeContext {
  codec: EventCodec;
  sql: StoreSql;
  fsql: FeatureSql;
  /** A write transaction whose created ids are cached once it commits. */
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T>;
}

/** Edit or delete in one transaction, in the lock order the module comment gives. */
export async function changeMessage(
  ctx: MessageChangeContext,
  r: EditMessageRequest | DeleteMessageRequest,
  o: MessageChangeOptions,
  what: 'edit' | 'delete',
): Promise<MessageChangeOutcome> {
  const { codec, sql, fsql } = ctx;
  /** One row of EVENT_COLUMNS as the event it stores. */
  const decode = (row: PgEventRow): ConversationEvent => codec.decode(row, eventContext(row));
  if (!isUuid(r.actorId) || !isUuid(r.messageId)) return MESSAGE_FORBIDDEN;
  const messageId = r.messageId.toLowerCase();
  return ctx.transaction(async ({ client }) => {
    const q = async <R extends pg.QueryResultRow>(name: FeatureSqlName, values: unknown[]): Promise<R[]> =>
      (await client.query<R>({ ...fsql[name], values })).rows;
    const [actorRow] = await q<{ id: number }>('userIdOf', [r.tenantId, r.actorId]);
    if (actorRow === undefined) return MESSAGE_FORBIDDEN;
    const actor = actorRow.id;
    const duplicate = async (): Promise<MessageChangeOutcome | undefined> => {
      if (r.clientMsgId === undefined) return undefined;
      const [first] = await q<PgEventRow>('duplicate', [actor, pgText(r.clientMsgId)]);
      return first === undefined ? undefined : { status: 'duplicate', event: codec.decodeDuplicateEvent(first, eventContext(first)) as MessageChangeEvent | StoredMessage };
    };
    const [located] = await q<{ conv: number }>('targetConv', [messageId, r.tenantId]);
    if (located === undefined) return (await duplicate()) ?? MESSAGE_FORBIDDEN;
    const conv = located.conv;
    // A stranger's answer neither waits on nor tells of the conversation's writers (no lock yet).
    const [current] = await q<{ role: number; left_seq: string | null }>('membership', [conv, actor]);
    if (current === undefined || current.left_seq !== null) return (await duplicate()) ?? MESSAGE_FORBIDDEN;
    // The message's row first, holding nothing else: a prune that holds it (the message is
    // expiring) makes this change wait alone, not with the conversation's and its members' locks
    // taken — every batch of those users would wait as long. No row: not a message (an edit's own
    // id, which every member is sent, and whose row a prune may hold too) or pruned meanwhile —
    // refused before any lock, as a stranger is.
    if ((await q('lockTarget', [messageId])).length === 0) return (await duplicate()) ?? MESSAGE_FORBIDDEN;
    // Locks in the order every writer takes them (the conversation, then its members' user
    // rows, by id) and only then the duplicate check: the actor's row lock orders this against
    // a message batch carrying the same key, as it does between batches. Checked before the
    // lock, the key's index entry could be taken under a batch holding the actor's lock, and
    // one of the two transactions — possibly a batch of other senders' messages — would fail.
    const [state] = await q<{ last_seq: string; closed: boolean; kind: number }>('lockConv', [conv]);
    const members = await currentMembers(sql, client, [conv]);
    const users = await lockUsers(sql, client, members.map((m) => m.uid));
    if (what === 'edit') await readBacklogFloors(sql, client, users, o.maxInboxSize, 1);
    const first = await duplicate();
    if (first !== undefined) return first;
    const [row] = await q<PgEventRow & { sender_int: number }>('target', [messageId]);
    if (state === undefined || row === undefined || state.closed) return MESSAGE_FORBIDDEN;
    if (row.kind !== EVENT_MESSAGE && row.kind !== EVENT_TOMBSTONE) return MESSAGE_FORBIDDEN;
    const [me] = await q<{ role: number; left_seq: string | null }>('membership', [conv, actor]);
    if (me === undefined || me.left_seq !== null) return MESSAGE_FORBIDDEN;
    const own = row.sender_int === actor;
    if (what === 'edit') {
      const window = o.editWindowMs ?? 0;
      if (!own || row.kind !== EVENT_MESSAGE || window <= 0 || r.timestamp - Number(row.ts) > window) return MESSAGE_FORBIDDEN;
    } else {
      const moderator = state.kind === KIND_GROUP && (me.role === ROLE_OWNER || me.role === ROLE_ADMIN);
      if (!own && !moderator) return MESSAGE_FORBIDDEN;
      if (row.kind === EVENT_TOMBSTONE) return { status: 'unchanged', message: decode(row) as StoredMessage };
    }
    const seq = Number(state.last_seq) + 1;
    const cmid = r.clientMsgId === undefined ? null : pgText(r.clientMsgId);
    if (what === 'edit') {
      const body = (r as EditMessageRequest).body;
      const clean = { content: pgText(body.content), mentions: body.mentions, hashtags: body.hashtags, links: body.links };
      const e = codec.encodeBody(r.eventId, clean);
      await q('insertEvent', [conv, seq, r.eventId, EVENT_EDIT, actor, e.content, e.keyId, messageId, e.attachments, e.mentions, e.hashtags, e.links, r.timestamp, cmid]);
      const old = decode(row) as StoredMessage;
      const m = codec.encodeBody(messageId, { ...clean, ...(old.attachments !== undefined ? { attachments: old.attachments } : {}) });
      await q('setBody', [conv, row.seq, m.content, m.keyId, m.attachments, m.mentions, m.hashtags, m.links, r.timestamp]);
    } else {
      await q('insertEvent', [conv, seq, r.eventId, EVENT_DELETE, actor, '', null, messageId, null, '[]', '[]', '[]', r.timestamp, cmid]);
      await q('tombstone', [conv, row.seq, codec.tombstoneContent(r.timestamp, r.actorId.toLowerCase())]);
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
      event: decode(eventRow!) as MessageChangeEvent,
      message: decode(messageRow!) as StoredMessage,
      deliveries,
    };
  });
}
