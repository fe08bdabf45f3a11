/**
 * Row <-> event mapping of the PostgreSQL adapter (storage v2). Sealing follows the v1 message
 * codec exactly (AAD `${id}/field`, '[]' left as is), so v1 rows migrated as they were stored
 * still open: membership payloads are sealed as `${id}/content`, group names as `${uuid}/name`.
 */
import type { ContentCipher } from './content-cipher.js';
import { UnknownKeyError } from './content-cipher.js';
import type {
  Attachment,
  ConversationEvent,
  Link,
  MemberRole,
  MembershipAction,
  MembershipEvent,
  MessageBody,
  MessageDeleteEvent,
  MessageEditEvent,
  StoredMessage,
} from './store.js';

/** events.kind (same codes as the SQLite adapter's message-codec). */
export const EVENT_EDIT = 2;
export const EVENT_DELETE = 3;
export const EVENT_TOMBSTONE = 4;

/** Event columns every read selects (aliases: e events, c conversations, s sender, r direct peer). */
export const EVENT_COLUMNS = `e.seq, e.id, e.kind, e.content, e.key_id, e.reply_to, e.attachments, e.mentions,
  e.hashtags, e.links, e.ts, e.client_msg_id, e.edited_at, c.uuid AS conv_uuid, c.tenant_id, c.kind AS conv_kind,
  s.user_id AS sender_uuid, r.user_id AS peer_uuid`;

/** The joins EVENT_COLUMNS needs, given `t(table)` and an `events e` already in FROM. */
export function eventJoins(t: (table: string) => string): string {
  return `JOIN ${t('conversations')} c ON c.id = e.conv
  JOIN ${t('users')} s ON s.id = e.sender
  LEFT JOIN ${t('users')} r ON c.kind = 0 AND r.id = (CASE
    WHEN split_part(c.direct_key, ':', 1)::int = e.sender THEN split_part(c.direct_key, ':', 2)::int
    ELSE split_part(c.direct_key, ':', 1)::int END)`;
}

export interface EventRow {
  seq: string | number;
  id: string;
  kind: number;
  content: string;
  key_id: string | null;
  reply_to: string | null;
  attachments: string | null;
  mentions: string;
  hashtags: string;
  links: string;
  ts: string | number;
  client_msg_id: string | null;
  /** Schema 3: time of the latest edit of a message. */
  edited_at: string | number | null;
  conv_uuid: string;
  tenant_id: string;
  conv_kind: number;
  sender_uuid: string;
  peer_uuid: string | null;
}

/** The stored column values of a message body (possibly sealed). */
export interface SealedBody {
  content: string;
  keyId: string | null;
  attachments: string | null;
  mentions: string;
  hashtags: string;
  links: string;
}

const EMPTY = '[]';
const ROLES: readonly MemberRole[] = ['member', 'admin', 'owner'];

export function roleCode(role: MemberRole): number {
  return ROLES.indexOf(role);
}

export function roleName(code: number): MemberRole {
  return ROLES[code] ?? 'member';
}

function toJson(values: readonly unknown[]): string {
  return values.length === 0 ? EMPTY : JSON.stringify(values);
}

function fromJson<T>(text: string): T[] {
  return text === EMPTY ? [] : (JSON.parse(text) as T[]);
}

/** The JSON payload of a membership event (stored in `content`). */
interface MembershipPayload {
  action: MembershipAction;
  actor: string;
  userIds: string[];
  name?: string;
  role?: MemberRole;
  newOwnerId?: string;
}

export class PgCodec {
  constructor(private readonly cipher?: ContentCipher) {}

  get keyId(): string | null {
    return this.cipher === undefined ? null : this.cipher.activeKeyId;
  }

  sealBody(id: string, m: MessageBody): SealedBody {
    const attachments = m.attachments === undefined ? null : toJson(m.attachments);
    const mentions = toJson(m.mentions);
    const hashtags = toJson(m.hashtags);
    const links = toJson(m.links);
    const cipher = this.cipher;
    if (cipher === undefined) return { content: m.content, keyId: null, attachments, mentions, hashtags, links };
    return {
      content: cipher.seal(m.content, `${id}/content`),
      keyId: cipher.activeKeyId,
      attachments: attachments === null || attachments === EMPTY ? attachments : cipher.seal(attachments, `${id}/attachments`),
      mentions: mentions === EMPTY ? mentions : cipher.seal(mentions, `${id}/mentions`),
      hashtags: hashtags === EMPTY ? hashtags : cipher.seal(hashtags, `${id}/hashtags`),
      links: links === EMPTY ? links : cipher.seal(links, `${id}/links`),
    };
  }

  /** The sealed JSON payload of a membership event, for the `content` column. */
  sealMembership(e: MembershipEvent): { content: string; keyId: string | null } {
    const payload: MembershipPayload = { action: e.action, actor: e.actorId, userIds: e.userIds };
    if (e.name !== undefined) payload.name = e.name;
    if (e.role !== undefined) payload.role = e.role;
    if (e.newOwnerId !== undefined) payload.newOwnerId = e.newOwnerId;
    const json = JSON.stringify(payload);
    const cipher = this.cipher;
    if (cipher === undefined) return { content: json, keyId: null };
    return { content: cipher.seal(json, `${e.id}/content`), keyId: cipher.activeKeyId };
  }

  sealName(conversationId: string, name: string): { name: string; keyId: string | null } {
    const cipher = this.cipher;
    if (cipher === undefined) return { name, keyId: null };
    return { name: cipher.seal(name, `${conversationId}/name`), keyId: cipher.activeKeyId };
  }

  openName(conversationId: string, name: string | null, keyId: string | null): string | undefined {
    if (name === null) return undefined;
    if (keyId === null) return name;
    return this.#open(keyId, name, `${conversationId}/name`);
  }

  decode(row: EventRow): ConversationEvent {
    switch (row.kind) {
      case 1:
        return this.#decodeMembership(row);
      case EVENT_EDIT:
        return this.#decodeEdit(row);
      case EVENT_DELETE:
        return this.#decodeDelete(row);
      case EVENT_TOMBSTONE:
        return this.#decodeTombstone(row);
      default:
        return this.#decodeMessage(row);
    }
  }

  /** The `content` of a tombstone row: who deleted it and when, in clear (nothing user-written). */
  tombstoneContent(deletedAt: number, deletedBy: string): string {
    return JSON.stringify({ deletedAt, deletedBy });
  }

  #decodeEdit(row: EventRow): MessageEditEvent {
    const m = this.#decodeMessage(row);
    const event: MessageEditEvent = {
      kind: 'edit',
      id: row.id,
      tenantId: row.tenant_id,
      conversationId: row.conv_uuid,
      seq: Number(row.seq),
      messageId: row.reply_to ?? '',
      actorId: row.sender_uuid,
      content: m.content,
      mentions: m.mentions,
      hashtags: m.hashtags,
      links: m.links,
      timestamp: Number(row.ts),
    };
    if (row.client_msg_id !== null) event.clientMsgId = row.client_msg_id;
    return event;
  }

  #decodeDelete(row: EventRow): MessageDeleteEvent {
    const event: MessageDeleteEvent = {
      kind: 'delete',
      id: row.id,
      tenantId: row.tenant_id,
      conversationId: row.conv_uuid,
      seq: Number(row.seq),
      messageId: row.reply_to ?? '',
      actorId: row.sender_uuid,
      timestamp: Number(row.ts),
    };
    if (row.client_msg_id !== null) event.clientMsgId = row.client_msg_id;
    return event;
  }

  #decodeTombstone(row: EventRow): StoredMessage {
    const meta = JSON.parse(row.content) as { deletedAt: number; deletedBy: string };
    const direct = row.conv_kind === 0;
    const message: StoredMessage = {
      kind: 'message',
      id: row.id,
      tenantId: row.tenant_id,
      conversationId: row.conv_uuid,
      conversationKind: direct ? 'direct' : 'group',
      seq: Number(row.seq),
      senderId: row.sender_uuid,
      timestamp: Number(row.ts),
      content: '',
      mentions: [],
      hashtags: [],
      links: [],
      deletedAt: meta.deletedAt,
      deletedBy: meta.deletedBy,
    };
    if (direct && row.peer_uuid !== null) message.recipientId = row.peer_uuid;
    if (row.client_msg_id !== null) message.clientMsgId = row.client_msg_id;
    return message;
  }

  #open(keyId: string, sealed: string, context: string): string {
    const cipher = this.cipher;
    if (cipher === undefined) throw new UnknownKeyError(keyId);
    return cipher.open(keyId, sealed, context);
  }

  #decodeMessage(row: EventRow): StoredMessage {
    let { content, attachments, mentions, hashtags, links } = row;
    const keyId = row.key_id;
    if (keyId !== null) {
      const id = row.id;
      content = this.#open(keyId, content, `${id}/content`);
      if (attachments !== null && attachments !== EMPTY) attachments = this.#open(keyId, attachments, `${id}/attachments`);
      if (mentions !== EMPTY) mentions = this.#open(keyId, mentions, `${id}/mentions`);
      if (hashtags !== EMPTY) hashtags = this.#open(keyId, hashtags, `${id}/hashtags`);
      if (links !== EMPTY) links = this.#open(keyId, links, `${id}/links`);
    }
    const direct = row.conv_kind === 0;
    const message: StoredMessage = {
      kind: 'message',
      id: row.id,
      tenantId: row.tenant_id,
      conversationId: row.conv_uuid,
      conversationKind: direct ? 'direct' : 'group',
      seq: Number(row.seq),
      senderId: row.sender_uuid,
      timestamp: Number(row.ts),
      content,
      mentions: fromJson<string>(mentions),
      hashtags: fromJson<string>(hashtags),
      links: fromJson<Link>(links),
    };
    // Optional fields are absent, never `undefined`-valued.
    if (direct && row.peer_uuid !== null) message.recipientId = row.peer_uuid;
    if (row.reply_to !== null) message.replyTo = row.reply_to;
    if (attachments !== null) message.attachments = fromJson<Attachment>(attachments);
    if (row.client_msg_id !== null) message.clientMsgId = row.client_msg_id;
    if (row.edited_at !== null && row.edited_at !== undefined) message.editedAt = Number(row.edited_at);
    return message;
  }

  #decodeMembership(row: EventRow): MembershipEvent {
    const json = row.key_id === null ? row.content : this.#open(row.key_id, row.content, `${row.id}/content`);
    const p = JSON.parse(json) as MembershipPayload;
    const event: MembershipEvent = {
      kind: 'membership',
      id: row.id,
      tenantId: row.tenant_id,
      conversationId: row.conv_uuid,
      seq: Number(row.seq),
      action: p.action,
      actorId: p.actor,
      userIds: p.userIds,
      timestamp: Number(row.ts),
    };
    if (p.name !== undefined) event.name = p.name;
    if (p.role !== undefined) event.role = p.role;
    if (p.newOwnerId !== undefined) event.newOwnerId = p.newOwnerId;
    return event;
  }
}
