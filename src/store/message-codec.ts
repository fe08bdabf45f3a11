/**
 * Row <-> StoredMessage mapping shared by both adapters, so SQLite and PostgreSQL store and return
 * exactly the same shapes. With a ContentCipher, every field derived from what the user wrote
 * (content, attachments, mentions, hashtags, links) is sealed; ids and timestamps stay clear
 * because the indexes need them.
 */
import type { ContentCipher } from './content-cipher.js';
import { UnknownKeyError } from './content-cipher.js';
import type { Attachment, Link, StoredMessage } from './store.js';

/** The columns both adapters select, in this order. */
export const MESSAGE_COLUMNS =
  'id, tenant_id, sender_id, recipient_id, content, key_id, reply_to, attachments, mentions, hashtags, links, timestamp, client_msg_id';

/** One messages row as the drivers return it (pg returns BIGINT as a string). */
export interface MessageRow {
  id: string;
  tenant_id: string;
  sender_id: string;
  recipient_id: string;
  content: string;
  key_id: string | null;
  reply_to: string | null;
  attachments: string | null;
  mentions: string;
  hashtags: string;
  links: string;
  timestamp: number | string;
  client_msg_id: string | null;
}

/** The column values of a message that the codec decides (possibly sealed). */
export interface EncodedFields {
  content: string;
  keyId: string | null;
  attachments: string | null;
  mentions: string;
  hashtags: string;
  links: string;
}

/**
 * The conversation key: both user ids sorted, so one index (conv, seq) serves both directions.
 * Queries still filter on the exact (sender, recipient) pair, so a key collision can never leak.
 */
export function conversationKey(a: string, b: string): string {
  return a < b ? `${a} ${b}` : `${b} ${a}`;
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

export class MessageCodec {
  constructor(private readonly cipher?: ContentCipher) {}

  encode(m: StoredMessage): EncodedFields {
    const attachments = m.attachments === undefined ? null : toJson(m.attachments);
    const mentions = toJson(m.mentions);
    const hashtags = toJson(m.hashtags);
    const links = toJson(m.links);
    const cipher = this.cipher;
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

  decode(row: MessageRow): StoredMessage {
    let { content, attachments, mentions, hashtags, links } = row;
    const keyId = row.key_id;
    if (keyId !== null) {
      const cipher = this.cipher;
      if (cipher === undefined) throw new UnknownKeyError(keyId);
      const id = row.id;
      content = cipher.open(keyId, content, `${id}/content`);
      if (attachments !== null && attachments !== EMPTY) attachments = cipher.open(keyId, attachments, `${id}/attachments`);
      if (mentions !== EMPTY) mentions = cipher.open(keyId, mentions, `${id}/mentions`);
      if (hashtags !== EMPTY) hashtags = cipher.open(keyId, hashtags, `${id}/hashtags`);
      if (links !== EMPTY) links = cipher.open(keyId, links, `${id}/links`);
    }
    const message: StoredMessage = {
      id: row.id,
      tenantId: row.tenant_id,
      senderId: row.sender_id,
      recipientId: row.recipient_id,
      content,
      mentions: fromJson<string>(mentions),
      hashtags: fromJson<string>(hashtags),
      links: fromJson<Link>(links),
      timestamp: Number(row.timestamp),
    };
    // Optional fields are absent, never `undefined`-valued, so serialized frames stay minimal.
    if (row.reply_to !== null) message.replyTo = row.reply_to;
    if (attachments !== null) message.attachments = fromJson<Attachment>(attachments);
    if (row.client_msg_id !== null) message.clientMsgId = row.client_msg_id;
    return message;
  }
}
