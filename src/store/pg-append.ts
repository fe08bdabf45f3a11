/**
 * The PostgreSQL message path: one batch of new messages decided and written in the caller's
 * transaction — users and direct conversations found or created, conversations then users locked
 * (postgres-store.ts module comment: lock order), duplicates and the backlog bound checked, and
 * every row written in one `write` statement.
 */
import { EVENT_MESSAGE, KIND_DIRECT, directKey, type EventCodec, type EventContext } from './message-codec.js';
import { atInboxBound } from './inbox-bound.js';
import { eventContext, type PgEventRow } from './pg-event-sql.js';
import type { PgIdCaches, Tx } from './pg-id-caches.js';
import { currentMembers, lockUsers, readBacklogFloors, type CurrentMember } from './pg-locked-rows.js';
import type { StoreSql } from './pg-store-sql.js';
import { isUuid, key, pgText } from './pg-values.js';
import { WriteSet } from './pg-write-set.js';
import type { AppendOutcome, Delivery, NewMessage, StoredMessage } from './store.js';
import { APPEND_FORBIDDEN, APPEND_INBOX_FULL } from './change-outcomes.js';


/** What the message path needs of the store. */
export interface AppendContext {
  codec: EventCodec;
  sql: StoreSql;
  ids: PgIdCaches;
}

/** Decide and write `batch` in `tx`: one outcome per message, in input order. */
export async function appendBatch(ctx: AppendContext, tx: Tx, batch: readonly NewMessage[], maxInboxSize: number): Promise<AppendOutcome[]> {
  const { codec, sql, ids } = ctx;
  const { client } = tx;
  const out = new Array<AppendOutcome | undefined>(batch.length);

  // 1. Users (created on demand) and conversations: direct ones found or created by the pair.
  const wanted: [string, string][] = [];
  for (const m of batch) {
    wanted.push([m.tenantId, m.senderId]);
    if ('peerId' in m.to) wanted.push([m.tenantId, m.to.peerId]);
  }
  const userIds = await ids.resolveUsers(tx, wanted);
  const uid = (tenant: string, uuid: string): number => userIds.get(key(tenant, uuid.toLowerCase()))!;
  const uuidOf = new Map<number, string>();
  for (const [tenant, uuid] of wanted) uuidOf.set(uid(tenant, uuid), uuid.toLowerCase());

  const directWanted = new Map<string, { tenant: string; at: number }>();
  for (const m of batch) {
    if (!('peerId' in m.to)) continue;
    const k = directKey(uid(m.tenantId, m.senderId), uid(m.tenantId, m.to.peerId));
    if (!directWanted.has(k)) directWanted.set(k, { tenant: m.tenantId, at: m.timestamp });
  }
  const directs = await ids.resolveDirects(tx, directWanted);
  // Conversations named by id (groups, and direct ones named by id): key(tenant, uuid) → id and
  // kind. A conversation's id, tenant and kind never change: committed rows are cached.
  const groups = new Map<string, { id: number; kind: number }>();
  const unknownGroups: string[] = [];
  for (const m of batch) {
    if (!('conversationId' in m.to) || !isUuid(m.to.conversationId)) continue;
    const k = key(m.tenantId, m.to.conversationId.toLowerCase());
    const c = ids.conversation(k);
    if (c !== undefined) groups.set(k, c);
    else unknownGroups.push(m.to.conversationId.toLowerCase());
  }
  if (unknownGroups.length > 0) {
    const { rows } = await client.query<{ id: number; tenant_id: string; uuid: string; kind: number }>({
      ...sql.findConversations,
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
      ids.cacheConversation(k, c);
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
    const { rows } = await client.query<{ conv: number; user: number }>({ ...sql.currentPairs, values: [convs, senders] });
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
      ...sql.lockConversations,
      values: [[...convIds]],
    });
    for (const row of rows) convState.set(row.id, { lastSeq: Number(row.last_seq), closed: row.closed });
  }
  const groupMembers = new Map<number, CurrentMember[]>();
  if (lockedGroups.size > 0) {
    for (const m of await currentMembers(sql, client, [...lockedGroups])) {
      let list = groupMembers.get(m.conv);
      if (list === undefined) groupMembers.set(m.conv, (list = []));
      list.push(m);
      uuidOf.set(m.uid, m.uuid);
    }
  }
  const users = await lockUsers(sql, client, uuidOf.keys());
  await readBacklogFloors(sql, client, users, maxInboxSize, batch.length);

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
        ...sql.findDuplicates,
        values: [senders, clientIds],
      });
      // A key names one operation of its sender, whatever its kind: an edit's or a delete's key
      // reused for a message answers with that event (as SQLite does) instead of reaching the
      // unique index, which would fail the whole batch — every sender's messages in it.
      for (const row of rows) existing.set(key(row.sender_int, row.client_msg_id!), codec.decodeDuplicate(row, eventContext(row)));
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
      out[i] = APPEND_FORBIDDEN;
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
        out[i] = APPEND_FORBIDDEN;
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
        out[i] = APPEND_INBOX_FULL;
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
    const sealed = codec.encodeMessage(m);
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
    const firstWrite = !ids.isWriter(wk) && !w.wrote.has(wk);
    if (firstWrite) w.wrote.add(wk);
    const ctx: EventContext = { tenantId: m.tenantId, conversationId, conversationKind: peer === undefined ? 'group' : 'direct' };
    if (peer !== undefined) ctx.directMembers = [uuidOf.get(peer)!];
    const message = codec.storedMessage(m, ctx, seq);
    if (k !== undefined) existing.set(k, message);
    // Not known to this node as a writer there: maybe the first (another node may have known).
    out[i] = firstWrite ? { status: 'stored', message, deliveries, firstWrite: true } : { status: 'stored', message, deliveries };
  }
  // A direct conversation this batch created for messages it then refused (inbox_full) or found
  // stored already (a clientMsgId's retry to a new peer) holds nothing: it goes again, or it would
  // list an empty conversation at the top of both users' lists (SQLite creates none).
  const unused = [...tx.newDirects].filter(([, c]) => !w.convs.has(c.id));
  if (unused.length > 0) {
    await client.query({ ...sql.dropDirects, values: [unused.map(([, c]) => c.id)] });
    for (const [k] of unused) tx.newDirects.delete(k);
  }
  if (!w.empty) await client.query({ ...sql.write, values: w.values() });
  for (const wk of w.wrote) tx.newWriters.add(wk);
  return out as AppendOutcome[];
}
