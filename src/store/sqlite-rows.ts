/**
 * The SQLite store's rows as better-sqlite3 returns them (UUIDs as 16-byte BLOBs), the facts it
 * caches about a conversation, and the small pure conversions between them and the codec's rows.
 */
import { KIND_DIRECT, type EventContext, type EventRow } from './message-codec.js';
import { bytesToUuid, isUuid, uuidToBytes } from './uuid-bytes.js';

/** A RawEventRow's columns, from `events e JOIN users su ON su.id = e.sender`. */
export const EVENT_COLUMNS =
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

export interface ConvRow {
  id: number;
  uuid: Buffer;
  tenant_id: string;
  kind: number;
}

export interface ConvState {
  last_seq: number;
  last_at: number;
  closed: number;
  name: string | null;
  key_id: string | null;
}

export interface MemberRow {
  user: number;
  user_id: Buffer;
  role: number;
  joined_seq: number;
}

/** Immutable facts about a conversation (safe to cache once committed). */
export interface ConvInfo {
  id: number;
  uuid: string;
  tenantId: string;
  kind: number;
  /** Direct conversations: member uuids (never change). */
  directMembers?: string[];
}

export interface ListRow {
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

export type TimelineRow = RawEventRow & { pos: number; conv: number };

export interface Recipient {
  id: number;
  uuid: string;
}

/** A message's replyTo as stored: a UUID as its BLOB, anything else as text. */
export function replyToColumn(replyTo: string | undefined): Buffer | string | null {
  if (replyTo === undefined) return null;
  return isUuid(replyTo) ? uuidToBytes(replyTo) : replyTo;
}

export function toEventRow(raw: RawEventRow): EventRow {
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

/** A requested page size as a non-negative integer (0 when not finite). */
export function clampLimit(limit: number): number {
  return Number.isFinite(limit) ? Math.max(0, Math.floor(limit)) : 0;
}

/** How the codec names a stored event's conversation. */
export function eventContext(info: ConvInfo): EventContext {
  const ctx: EventContext = {
    tenantId: info.tenantId,
    conversationId: info.uuid,
    conversationKind: info.kind === KIND_DIRECT ? 'direct' : 'group',
  };
  if (info.directMembers !== undefined) ctx.directMembers = info.directMembers;
  return ctx;
}
