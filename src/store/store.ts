/**
 * The `Store` port: durable messages and per-recipient inboxes. The chat domain depends only on
 * this interface; adapters (SQLite, PostgreSQL) live beside it and pass one contract test suite.
 */
import type { Attachment, ChatMessage, Link } from '../protocol/server-frames.js';

export type { Attachment, ChatMessage, Link };

/** A message as stored: the wire message plus what the server needs to dedupe and partition. */
export interface StoredMessage extends ChatMessage {
  tenantId: string;
  clientMsgId?: string;
}

export type InsertOutcome =
  /** Stored now. */
  | { status: 'stored'; message: StoredMessage }
  /** Same (tenantId, senderId, clientMsgId) was stored before: `message` is the first one; nothing new stored. */
  | { status: 'duplicate'; message: StoredMessage }
  /** The recipient's unacked inbox (per tenant) holds `maxInboxSize` messages: refused, nothing stored. */
  | { status: 'inbox_full' };

export interface InsertOptions {
  /** Unacked messages a recipient may hold; an insert beyond it is refused with `inbox_full`. */
  maxInboxSize: number;
}

export interface HistoryQuery {
  /** Message id cursor: return messages strictly older than this one. */
  before?: string;
  limit: number;
}

export interface Store {
  /** Create or migrate the schema. Idempotent. */
  init(): Promise<void>;
  /**
   * Insert a batch in ONE transaction (group commit). Outcomes are returned in input order. A
   * resolved promise means every `stored` row is durable.
   */
  insertMessages(batch: readonly StoredMessage[], options: InsertOptions): Promise<InsertOutcome[]>;
  // Every read is scoped by tenant (the token's `tid`; "default" without it): the same user id in
  // another tenant is another user, so a foreign tenant can neither read nor fill your inbox.
  // (Lead's change while the adapters were being written: tenantId is the first parameter.)
  /** Unacked messages addressed to `recipientId` in `tenantId`, oldest first. */
  pendingFor(tenantId: string, recipientId: string, limit: number): Promise<StoredMessage[]>;
  /** Mark messages acked; only those addressed to `recipientId` in `tenantId` are touched. Returns how many. */
  ack(tenantId: string, recipientId: string, messageIds: readonly string[]): Promise<number>;
  /** One page of the conversation between `userId` and `peerId` in `tenantId`, newest first. */
  history(tenantId: string, userId: string, peerId: string, query: HistoryQuery): Promise<StoredMessage[]>;
  /** Delete messages with `timestamp < olderThan` (acked or not). Returns how many. */
  pruneOlderThan(olderThan: number): Promise<number>;
  /** Cheap reachability check for /readyz. Rejects when storage is unreachable. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
