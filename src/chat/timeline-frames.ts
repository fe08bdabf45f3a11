/**
 * Serialization of timeline events. One event reaches many timelines (a group message reaches
 * every member, each at their own `pos`), so the event is serialized once into a `body` and each
 * frame is `{"pos":N,` + body. Frames that carry a position always start with that prefix, which
 * lets the delivery path read the position back without parsing the frame (`framePos`).
 */
import type { ConversationEvent, MembershipEvent, MessageDeleteEvent, MessageEditEvent, StoredMessage } from '../store/store.js';
import type { ChatMessage, MembershipChange, MessageDeleted, MessageEdited, TimelineItem } from '../protocol/server-frames.js';

const POS_PREFIX = '{"pos":';

/**
 * A bus frame no client ever receives: the user's sessions read their timeline from storage
 * (TimelinePublisher.catchUp). Bus frames are built by servers only, so no client can send it.
 */
export const CATCH_UP_HINT = '{"catchUp":true}';

export function toWireMessage(m: StoredMessage): ChatMessage {
  const { type: _type, ...message } = messageItem(m);
  return message;
}

/**
 * A message as a timeline item, `type` first. One literal, no spread: every stored message is
 * serialized through it, and a spread builds the object twice and is slower to stringify.
 */
function messageItem(m: StoredMessage): ChatMessage & { type: 'chat_message' } {
  const out: ChatMessage & { type: 'chat_message' } = {
    type: 'chat_message',
    id: m.id,
    conversationId: m.conversationId,
    seq: m.seq,
    senderId: m.senderId,
    content: m.content,
    mentions: m.mentions,
    hashtags: m.hashtags,
    links: m.links,
    timestamp: m.timestamp,
  };
  // Optional fields are absent, never `undefined`-valued.
  if (m.recipientId !== undefined) out.recipientId = m.recipientId;
  if (m.replyTo !== undefined) out.replyTo = m.replyTo;
  if (m.attachments !== undefined) out.attachments = m.attachments;
  if (m.editedAt !== undefined) out.editedAt = m.editedAt;
  if (m.deletedAt !== undefined) out.deletedAt = m.deletedAt;
  if (m.deletedBy !== undefined) out.deletedBy = m.deletedBy;
  return out;
}

export function toWireEdit(e: MessageEditEvent): MessageEdited {
  return {
    id: e.id,
    conversationId: e.conversationId,
    seq: e.seq,
    messageId: e.messageId,
    actorId: e.actorId,
    content: e.content,
    mentions: e.mentions,
    hashtags: e.hashtags,
    links: e.links,
    editedAt: e.timestamp,
    timestamp: e.timestamp,
  };
}

export function toWireDelete(e: MessageDeleteEvent): MessageDeleted {
  return { id: e.id, conversationId: e.conversationId, seq: e.seq, messageId: e.messageId, actorId: e.actorId, deletedAt: e.timestamp, timestamp: e.timestamp };
}

export function toWireMembership(e: MembershipEvent): MembershipChange {
  const out: MembershipChange = {
    id: e.id,
    conversationId: e.conversationId,
    seq: e.seq,
    action: e.action,
    actorId: e.actorId,
    userIds: e.userIds,
    timestamp: e.timestamp,
  };
  if (e.name !== undefined) out.name = e.name;
  if (e.role !== undefined) out.role = e.role;
  if (e.newOwnerId !== undefined) out.newOwnerId = e.newOwnerId;
  return out;
}

export function toHistoryItem(e: ConversationEvent): TimelineItem {
  switch (e.kind) {
    case 'message':
      return messageItem(e);
    case 'membership':
      return { type: 'membership', ...toWireMembership(e) };
    case 'edit':
      return { type: 'message_edited', ...toWireEdit(e) };
    case 'delete':
      return { type: 'message_deleted', ...toWireDelete(e) };
  }
}

/** The event's frame without its position: everything after `{"pos":N,`. */
export function eventBody(e: ConversationEvent): string {
  return e.kind === 'message' ? messageBody(e) : JSON.stringify(toHistoryItem(e)).slice(1);
}

const json = JSON.stringify;
const list = (a: readonly unknown[]): string => (a.length === 0 ? '[]' : json(a));

/**
 * `JSON.stringify(messageItem(m)).slice(1)`, written out: every stored message is serialized once
 * on its way out, and the generic path (an object built, then walked) cost about four times this.
 * Same keys in the same order (tested equal). Ids the store hands out are canonical UUIDs (its
 * contract: made by the server, a verified token's `sub`, or decoded from 16 bytes), which JSON
 * quotes as they are; every other string still goes through JSON.stringify.
 */
function messageBody(m: StoredMessage): string {
  let out = `"type":"chat_message","id":"${m.id}","conversationId":"${m.conversationId}","seq":${m.seq},"senderId":"${m.senderId}","content":${json(m.content)},"mentions":${list(m.mentions)},"hashtags":${list(m.hashtags)},"links":${list(m.links)},"timestamp":${m.timestamp}`;
  if (m.recipientId !== undefined) out += `,"recipientId":"${m.recipientId}"`;
  if (m.replyTo !== undefined) out += `,"replyTo":${json(m.replyTo)}`;
  if (m.attachments !== undefined) out += `,"attachments":${json(m.attachments)}`;
  if (m.editedAt !== undefined) out += `,"editedAt":${m.editedAt}`;
  if (m.deletedAt !== undefined) out += `,"deletedAt":${m.deletedAt}`;
  if (m.deletedBy !== undefined) out += `,"deletedBy":${json(m.deletedBy)}`;
  return `${out}}`;
}

export function timelineFrame(pos: number, body: string): string {
  return `${POS_PREFIX}${pos},${body}`;
}

const CHAT_TYPE = '"type":"chat_message"';

/** A frame built by `timelineFrame` for a chat message: its type is read right after the position, no scan. */
export function isTimelineChatMessage(frame: string): boolean {
  if (!frame.startsWith(POS_PREFIX)) return false;
  const comma = frame.indexOf(',', POS_PREFIX.length);
  return comma > 0 && frame.startsWith(CHAT_TYPE, comma + 1);
}

const SENDER_FIELD = '"senderId":"';

/**
 * Whether a frame built by `timelineFrame` is a chat message on its sender's own timeline (a copy
 * for the sender's other devices, not a delivery): the user part of `userKey` (`tenant:userid`,
 * lower-cased) is its `senderId` (the tenant is the delivery's own: a frame reaches only its
 * tenant's users). Read in place, no parse and no string built: it runs for every copy
 * delivered. `senderId` comes before any string a user wrote (messageBody), and a string value
 * cannot hold the field's opening unescaped, so the first match is that field.
 */
export function isSendersCopy(userKey: string, frame: string): boolean {
  if (!isTimelineChatMessage(frame)) return false;
  const start = frame.indexOf(SENDER_FIELD);
  if (start < 0) return false;
  const from = start + SENDER_FIELD.length;
  const end = frame.indexOf('"', from);
  const at = userKey.length - (end - from);
  if (end < 0 || at < 1 || userKey.charCodeAt(at - 1) !== 58 /* : */) return false;
  for (let i = from; i < end; i++) {
    const c = frame.charCodeAt(i);
    if ((c >= 65 && c <= 90 ? c + 32 : c) !== userKey.charCodeAt(at + i - from)) return false;
  }
  return true;
}

/** The position of a frame built by `timelineFrame`, or undefined for any other frame (no parse). */
export function framePos(frame: string): number | undefined {
  if (!frame.startsWith(POS_PREFIX)) return undefined;
  let pos = 0;
  for (let i = POS_PREFIX.length; i < frame.length; i++) {
    const c = frame.charCodeAt(i) - 48;
    if (c >= 0 && c <= 9) pos = pos * 10 + c;
    else return frame.charCodeAt(i) === 44 /* , */ && i > POS_PREFIX.length ? pos : undefined;
  }
  return undefined;
}
