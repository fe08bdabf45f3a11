/**
 * Row <-> event mapping shared by both adapters (storage v2), so SQLite and PostgreSQL store and
 * return exactly the same shapes. With a ContentCipher every field derived from what users wrote
 * is sealed (AES-GCM, AAD per field); ids, seqs and timestamps stay clear because indexes need them.
 *
 * Each adapter turns its driver's rows into an `EventRow` first (SQLite: 16-byte BLOB uuids to
 * strings, in sqlite-rows.ts; PostgreSQL: only its column aliases and the `EventContext` from the
 * joined conversation, in pg-event-sql.ts); everything after that — kind codes, roles, sealing and
 * opening with their AADs, the payload JSON — is here, once.
 *
 * Stable exports (both adapters use them; do not change their meaning):
 * - `EventCodec` — `new EventCodec(cipher?, { membershipActorKey })`; `encodeMessage(m)` /
 *   `encodeBody(id, body)` / `encodeMembership(payload)` → `EncodedFields` (the column
 *   values of an `events` row that the codec decides), `decode(row, ctx)` → `ConversationEvent`,
 *   `decodeMessage(row, ctx)` → `StoredMessage`, `storedMessage(m, ctx, seq)` (the StoredMessage an
 *   append returns, built from its input without a round trip), `sealName(conversationId, name)`
 *   / `openName(conversationId, stored, keyId)` for `conversations.name` (a NULL name opens to
 *   undefined).
 * - `EventRow` — one `events` row as the adapter hands it over, UUID columns already converted to
 *   canonical strings (`id`, `sender` = the sender's/actor's user uuid, `reply_to`); BIGINT columns
 *   as numbers (SQLite) or decimal strings (PostgreSQL).
 * - `EventContext` — what the row does not hold: tenant, conversation uuid and kind, and for a
 *   direct conversation its member uuids (to derive `recipientId`).
 * - `MembershipPayload` — what a membership event keeps in `content` (JSON, sealed as
 *   `${eventId}/content` with a cipher); `sender` holds the actor, which decoding reads. The
 *   payload names the actor too, under a key that differs by adapter (`membershipActorKey`:
 *   SQLite rows say `actorId`, PostgreSQL rows `actor`); writers keep their adapter's key so
 *   that stored rows stay byte-for-byte what they were and older cluster nodes still read them.
 * - Codes: `EVENT_MESSAGE` 0 / `EVENT_MEMBERSHIP` 1 / `EVENT_EDIT` 2 / `EVENT_DELETE` 3 /
 *   `EVENT_TOMBSTONE` 4 (events.kind; a deleted message's row becomes a tombstone whose `content`
 *   holds `{deletedAt, deletedBy}` in clear — nothing user-written is left in it), `KIND_DIRECT` 0 / `KIND_GROUP` 1
 *   (conversations.kind), `ROLE_MEMBER` 0 / `ROLE_ADMIN` 1 / `ROLE_OWNER` 2 (members.role) with
 *   `roleCode(role)` / `roleName(code)`.
 * - `directKey(a, b)` — conversations.direct_key: "lo:hi" of the two users' integer ids.
 */
import type { ContentCipher } from './content-cipher.js';
import { UnknownKeyError, isKeyError } from './content-cipher.js';
import type {
  Attachment,
  ConversationEvent,
  ConversationKind,
  Link,
  MemberRole,
  MembershipAction,
  MembershipEvent,
  MessageBody,
  MessageDeleteEvent,
  MessageEditEvent,
  NewMessage,
  StoredMessage,
} from './store.js';

export const EVENT_MESSAGE = 0;
export const EVENT_MEMBERSHIP = 1;
export const EVENT_EDIT = 2;
export const EVENT_DELETE = 3;
export const EVENT_TOMBSTONE = 4;
export const KIND_DIRECT = 0;
export const KIND_GROUP = 1;
export const ROLE_MEMBER = 0;
export const ROLE_ADMIN = 1;
export const ROLE_OWNER = 2;

export function roleCode(role: MemberRole): number {
  return role === 'owner' ? ROLE_OWNER : role === 'admin' ? ROLE_ADMIN : ROLE_MEMBER;
}

export function roleName(code: number | string): MemberRole {
  const c = Number(code);
  return c === ROLE_OWNER ? 'owner' : c === ROLE_ADMIN ? 'admin' : 'member';
}

/** conversations.direct_key of a pair of users' integer ids (order-independent). */
export function directKey(a: number | bigint | string, b: number | bigint | string): string {
  if (typeof a === 'number' && typeof b === 'number' && Number.isSafeInteger(a) && Number.isSafeInteger(b)) {
    return a <= b ? `${a}:${b}` : `${b}:${a}`;
  }
  const x = BigInt(a);
  const y = BigInt(b);
  return x <= y ? `${x}:${y}` : `${y}:${x}`;
}

/** One events row; UUID columns as canonical strings, BIGINT columns as numbers or strings (pg). */
export interface EventRow {
  id: string;
  seq: number | string;
  kind: number | string;
  /** The sender (messages) or actor (membership events): a user uuid. */
  sender: string;
  content: string;
  key_id: string | null;
  reply_to: string | null;
  attachments: string | null;
  mentions: string;
  hashtags: string;
  links: string;
  ts: number | string;
  client_msg_id: string | null;
  /** Schema 3: time of the latest edit of a message (absent or null: never edited). */
  edited_at?: number | string | null;
}

export interface EventContext {
  tenantId: string;
  conversationId: string;
  conversationKind: ConversationKind;
  /** Direct conversations: the member uuids (one for a note to self, else two). */
  directMembers?: readonly string[];
}

/** The column values of an event that the codec decides (possibly sealed). */
export interface EncodedFields {
  content: string;
  keyId: string | null;
  attachments: string | null;
  mentions: string;
  hashtags: string;
  links: string;
}

/** What a membership event stores in `content`. */
export interface MembershipPayload {
  id: string;
  action: MembershipAction;
  actorId: string;
  userIds: readonly string[];
  name?: string;
  role?: MemberRole;
  newOwnerId?: string;
}

// Most messages have no mentions/hashtags/links: skip JSON work for them. Sealing an empty array
// would hide nothing (its ciphertext length gives it away), so '[]' is stored as is.
const EMPTY = '[]';

function toJson(values: readonly unknown[]): string {
  return values.length === 0 ? EMPTY : JSON.stringify(values);
}

function fromJson<T>(text: string): T[] {
  return text === EMPTY ? [] : (JSON.parse(text) as T[]);
}

/** The body a tombstone decodes to (its columns hold no message body any more). */
/** A row with its sealed body left out: what stays readable of it without its key. */
const withoutBody = (row: EventRow): EventRow => ({ ...row, content: '', key_id: null, attachments: null, mentions: EMPTY, hashtags: EMPTY, links: EMPTY });

const TOMBSTONE_BODY = { content: '', attachments: null, mentions: EMPTY, hashtags: EMPTY, links: EMPTY } as const;

/** What a membership row's `content` holds; the actor's key is left out (decoding uses `sender`). */
interface StoredPayload {
  action: MembershipAction;
  userIds: string[];
  name?: string;
  role?: MemberRole;
  newOwnerId?: string;
}

export interface EventCodecOptions {
  /**
   * The key under which a membership payload names its actor: `actorId` (SQLite, the default) or
   * `actor` (PostgreSQL). Only writing uses it.
   */
  membershipActorKey?: 'actorId' | 'actor';
}

export class EventCodec {
  readonly #cipher: ContentCipher | undefined;
  readonly #actorKey: 'actorId' | 'actor';

  constructor(cipher?: ContentCipher, options: EventCodecOptions = {}) {
    this.#cipher = cipher;
    this.#actorKey = options.membershipActorKey ?? 'actorId';
  }

  /** The key new rows are sealed with; undefined when nothing is encrypted. */
  get activeKeyId(): string | undefined {
    return this.#cipher?.activeKeyId;
  }

  encodeMessage(m: NewMessage): EncodedFields {
    const attachments = m.attachments === undefined ? null : toJson(m.attachments);
    const mentions = toJson(m.mentions);
    const hashtags = toJson(m.hashtags);
    const links = toJson(m.links);
    const cipher = this.#cipher;
    if (cipher === undefined) return { content: m.content, keyId: null, attachments, mentions, hashtags, links };
    const id = m.id;
    return {
      content: cipher.seal(m.content, `${id}/content`),
      keyId: cipher.activeKeyId,
      attachments: attachments === null || attachments === EMPTY ? attachments : cipher.seal(attachments, `${id}/attachments`),
      mentions: mentions === EMPTY ? mentions : cipher.seal(mentions, `${id}/mentions`),
      hashtags: hashtags === EMPTY ? hashtags : cipher.seal(hashtags, `${id}/hashtags`),
      links: links === EMPTY ? links : cipher.seal(links, `${id}/links`),
    };
  }

  encodeMembership(p: MembershipPayload): EncodedFields {
    // Key order is part of the stored bytes: action, actor, userIds, then the optional fields.
    const payload: StoredPayload & Record<string, unknown> = { action: p.action, [this.#actorKey]: p.actorId, userIds: [...p.userIds] };
    if (p.name !== undefined) payload.name = p.name;
    if (p.role !== undefined) payload.role = p.role;
    if (p.newOwnerId !== undefined) payload.newOwnerId = p.newOwnerId;
    const json = JSON.stringify(payload);
    const cipher = this.#cipher;
    const content = cipher === undefined ? json : cipher.seal(json, `${p.id}/content`);
    return { content, keyId: cipher?.activeKeyId ?? null, attachments: null, mentions: EMPTY, hashtags: EMPTY, links: EMPTY };
  }

  /** The MembershipEvent a group change returns (same shape `decode` gives for its row). */
  membershipEvent(p: MembershipPayload, ctx: { tenantId: string; conversationId: string }, seq: number, timestamp: number): MembershipEvent {
    const event: MembershipEvent = {
      kind: 'membership',
      id: p.id,
      tenantId: ctx.tenantId,
      conversationId: ctx.conversationId,
      seq,
      action: p.action,
      actorId: p.actorId,
      userIds: [...p.userIds],
      timestamp,
    };
    if (p.name !== undefined) event.name = p.name;
    if (p.role !== undefined) event.role = p.role;
    if (p.newOwnerId !== undefined) event.newOwnerId = p.newOwnerId;
    return event;
  }

  /** The StoredMessage an append returns for `m` (same shape `decode` gives for its row). */
  storedMessage(m: NewMessage, ctx: EventContext, seq: number): StoredMessage {
    const message: StoredMessage = {
      kind: 'message',
      id: m.id,
      tenantId: ctx.tenantId,
      conversationId: ctx.conversationId,
      conversationKind: ctx.conversationKind,
      seq,
      senderId: m.senderId,
      content: m.content,
      mentions: [...m.mentions],
      hashtags: [...m.hashtags],
      links: m.links.map((l) => ({ ...l })),
      timestamp: m.timestamp,
    };
    if (ctx.conversationKind === 'direct') message.recipientId = recipientOf(m.senderId, ctx.directMembers);
    if (m.replyTo !== undefined) message.replyTo = m.replyTo;
    if (m.attachments !== undefined) message.attachments = m.attachments.map((a) => ({ ...a }));
    if (m.clientMsgId !== undefined) message.clientMsgId = m.clientMsgId;
    return message;
  }

  decode(row: EventRow, ctx: EventContext): ConversationEvent {
    switch (Number(row.kind)) {
      case EVENT_MEMBERSHIP:
        return this.#decodeMembership(row, ctx);
      case EVENT_EDIT:
        return this.#decodeEdit(row, ctx);
      case EVENT_DELETE:
        return this.#decodeDelete(row, ctx);
      default:
        return this.decodeMessage(row, ctx);
    }
  }

  /** The columns of an edit event: the new body, sealed under the event's own id. */
  encodeEdit(eventId: string, body: Pick<MessageBody, 'content' | 'mentions' | 'hashtags' | 'links'>): EncodedFields {
    return this.encodeBody(eventId, body);
  }

  /** A message body sealed under `id` (attachments included when given). */
  encodeBody(id: string, body: Pick<MessageBody, 'content' | 'mentions' | 'hashtags' | 'links' | 'attachments'>): EncodedFields {
    const m = { id, content: body.content, mentions: body.mentions, hashtags: body.hashtags, links: body.links } as NewMessage;
    if (body.attachments !== undefined) m.attachments = body.attachments;
    return this.encodeMessage(m);
  }

  /** The `content` of a tombstone row: who deleted it and when, in clear (nothing user-written). */
  tombstoneContent(deletedAt: number, deletedBy: string): string {
    return JSON.stringify({ deletedAt, deletedBy });
  }

  #decodeEdit(row: EventRow, ctx: EventContext): MessageEditEvent {
    const body = this.#openBody(row);
    const event: MessageEditEvent = {
      kind: 'edit',
      id: row.id,
      tenantId: ctx.tenantId,
      conversationId: ctx.conversationId,
      seq: Number(row.seq),
      messageId: row.reply_to ?? '',
      actorId: row.sender,
      content: body.content,
      mentions: fromJson<string>(body.mentions),
      hashtags: fromJson<string>(body.hashtags),
      links: fromJson<Link>(body.links),
      timestamp: Number(row.ts),
    };
    if (row.client_msg_id !== null) event.clientMsgId = row.client_msg_id;
    return event;
  }

  #decodeDelete(row: EventRow, ctx: EventContext): MessageDeleteEvent {
    const event: MessageDeleteEvent = {
      kind: 'delete',
      id: row.id,
      tenantId: ctx.tenantId,
      conversationId: ctx.conversationId,
      seq: Number(row.seq),
      messageId: row.reply_to ?? '',
      actorId: row.sender,
      timestamp: Number(row.ts),
    };
    if (row.client_msg_id !== null) event.clientMsgId = row.client_msg_id;
    return event;
  }

  /** The user-written columns of a message or edit row, opened (AAD `${id}/field`; '[]' is never sealed). */
  #openBody(row: EventRow): { content: string; attachments: string | null; mentions: string; hashtags: string; links: string } {
    let { content, attachments, mentions, hashtags, links } = row;
    const keyId = row.key_id;
    if (keyId !== null) {
      const cipher = this.#cipherFor(keyId);
      const id = row.id;
      content = cipher.open(keyId, content, `${id}/content`);
      if (attachments !== null && attachments !== EMPTY) attachments = cipher.open(keyId, attachments, `${id}/attachments`);
      if (mentions !== EMPTY) mentions = cipher.open(keyId, mentions, `${id}/mentions`);
      if (hashtags !== EMPTY) hashtags = cipher.open(keyId, hashtags, `${id}/hashtags`);
      if (links !== EMPTY) links = cipher.open(keyId, links, `${id}/links`);
    }
    return { content, attachments, mentions, hashtags, links };
  }

  /**
   * A stored message found again by its sender's key (a resend answered as a duplicate): what the
   * answer needs is its id, place and time, not its body. A body sealed with a key this node no
   * longer holds (or cannot open) is left out, so that message's resend is answered — and the other
   * messages of its batch are stored — instead of the whole batch failing.
   */
  decodeDuplicate(row: EventRow, ctx: EventContext): StoredMessage {
    try {
      return this.decodeMessage(row, ctx);
    } catch (err) {
      if (!isKeyError(err)) throw err;
      return this.decodeMessage({ ...withoutBody(row), kind: EVENT_MESSAGE }, ctx);
    }
  }

  /**
   * As decodeDuplicate, for an edit's, a delete's or a create's key found again: the event it
   * named, its body left out when it cannot be opened any more (a group's creation: without its
   * name and members).
   */
  decodeDuplicateEvent(row: EventRow, ctx: EventContext): ConversationEvent {
    try {
      return this.decode(row, ctx);
    } catch (err) {
      if (!isKeyError(err)) throw err;
      // Only a create stores its key on a membership event: it is that group's creation.
      if (Number(row.kind) === EVENT_MEMBERSHIP) {
        return { kind: 'membership', id: row.id, tenantId: ctx.tenantId, conversationId: ctx.conversationId, seq: Number(row.seq), action: 'created', actorId: row.sender, userIds: [], timestamp: Number(row.ts) };
      }
      return this.decode(withoutBody(row), ctx);
    }
  }

  decodeMessage(row: EventRow, ctx: EventContext): StoredMessage {
    // A tombstone keeps nothing user-written: its content is who deleted it and when, in clear.
    const tombstone = Number(row.kind) === EVENT_TOMBSTONE;
    const { content, attachments, mentions, hashtags, links } = tombstone ? TOMBSTONE_BODY : this.#openBody(row);
    const message: StoredMessage = {
      kind: 'message',
      id: row.id,
      tenantId: ctx.tenantId,
      conversationId: ctx.conversationId,
      conversationKind: ctx.conversationKind,
      seq: Number(row.seq),
      senderId: row.sender,
      content,
      mentions: fromJson<string>(mentions),
      hashtags: fromJson<string>(hashtags),
      links: fromJson<Link>(links),
      timestamp: Number(row.ts),
    };
    if (tombstone) {
      const meta = JSON.parse(row.content) as { deletedAt: number; deletedBy: string };
      message.deletedAt = meta.deletedAt;
      message.deletedBy = meta.deletedBy;
    }
    // Optional fields are absent, never `undefined`-valued, so serialized frames stay minimal.
    if (ctx.conversationKind === 'direct') message.recipientId = recipientOf(row.sender, ctx.directMembers);
    if (!tombstone && row.reply_to !== null) message.replyTo = row.reply_to;
    if (attachments !== null) message.attachments = fromJson<Attachment>(attachments);
    if (row.client_msg_id !== null) message.clientMsgId = row.client_msg_id;
    if (!tombstone && row.edited_at !== undefined && row.edited_at !== null) message.editedAt = Number(row.edited_at);
    return message;
  }

  #decodeMembership(row: EventRow, ctx: EventContext): MembershipEvent {
    const json = row.key_id === null ? row.content : this.#cipherFor(row.key_id).open(row.key_id, row.content, `${row.id}/content`);
    const p = JSON.parse(json) as StoredPayload;
    const event: MembershipEvent = {
      kind: 'membership',
      id: row.id,
      tenantId: ctx.tenantId,
      conversationId: ctx.conversationId,
      seq: Number(row.seq),
      action: p.action,
      actorId: row.sender,
      userIds: p.userIds,
      timestamp: Number(row.ts),
    };
    if (p.name !== undefined) event.name = p.name;
    if (p.role !== undefined) event.role = p.role;
    if (p.newOwnerId !== undefined) event.newOwnerId = p.newOwnerId;
    return event;
  }

  /** conversations.name (+ key_id) for a group name. */
  sealName(conversationId: string, name: string): { name: string; keyId: string | null } {
    const cipher = this.#cipher;
    if (cipher === undefined) return { name, keyId: null };
    return { name: cipher.seal(name, `${conversationId}/name`), keyId: cipher.activeKeyId };
  }

  /** conversations.name opened (undefined for a NULL column: a direct conversation has none). */
  openName(conversationId: string, stored: string, keyId: string | null): string;
  openName(conversationId: string, stored: string | null, keyId: string | null): string | undefined;
  openName(conversationId: string, stored: string | null, keyId: string | null): string | undefined {
    if (stored === null) return undefined;
    if (keyId === null) return stored;
    return this.#cipherFor(keyId).open(keyId, stored, `${conversationId}/name`);
  }

  /**
   * conversations.name sealed again under the active key, or undefined when it already is (or
   * nothing is encrypted). UnknownKeyError when the key that sealed it is gone, DecryptionError when
   * the bytes under that id are wrong or the name was damaged (isKeyError). A group name never
   * ages out the way events do, so the stores run this over every name at start-up: an old key is
   * then needed only by rows retention will delete.
   */
  resealName(conversationId: string, stored: string, keyId: string | null): { name: string; keyId: string | null } | undefined {
    const cipher = this.#cipher;
    if (cipher === undefined || keyId === cipher.activeKeyId) return undefined;
    return this.sealName(conversationId, this.openName(conversationId, stored, keyId));
  }

  /**
   * The name a rename compares with: undefined when there is none, or when it cannot be opened
   * (the key that sealed it is gone, the bytes under its id are wrong, or the name was damaged) —
   * the rename then overwrites it, which is how such a name is repaired.
   */
  currentName(conversationId: string, stored: string | null, keyId: string | null): string | undefined {
    try {
      return this.openName(conversationId, stored, keyId);
    } catch (err) {
      if (isKeyError(err)) return undefined;
      throw err;
    }
  }

  /** The cipher that opens what `keyId` sealed (UnknownKeyError without one). */
  #cipherFor(keyId: string): ContentCipher {
    const cipher = this.#cipher;
    if (cipher === undefined) throw new UnknownKeyError(keyId);
    return cipher;
  }
}

function recipientOf(senderId: string, members: readonly string[] | undefined): string {
  if (members === undefined) return senderId;
  for (const m of members) if (m !== senderId) return m;
  return senderId;
}

