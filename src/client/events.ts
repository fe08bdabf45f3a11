/** The typed events of RampartClient. Frame types come from src/protocol. */
import type { ChatMessage, MembershipChange, MessageDeleted, MessageEdited } from '../protocol/server-frames.js';

export type ConnectionState = 'idle' | 'connecting' | 'authenticating' | 'open' | 'reconnecting' | 'closed';

export interface TimelineMessage extends ChatMessage {
  pos: number;
  /** Sent by this user (from another device, or from this one before a reconnect). */
  own: boolean;
}

export interface TimelineMembership extends MembershipChange {
  pos: number;
}

/** An edit of a message (`message_edited`): `content`… is its new body (`""` if it was deleted since). */
export interface TimelineEdit extends MessageEdited {
  pos: number;
}

/** A deletion of a message (`message_deleted`): it is a tombstone from now on. */
export interface TimelineDelete extends MessageDeleted {
  pos: number;
}

/** Another member's receipt positions (seqs) in a conversation moved; absent fields did not. */
export interface ReceiptEvent {
  conversationId: string;
  userId: string;
  delivered?: number;
  read?: number;
}

/** The sending client's own message, confirmed by the server (it takes the place of its timeline copy). */
export interface SentEvent {
  id: string;
  clientMsgId?: string;
  conversationId: string;
  seq: number;
  timestamp: number;
  /** Absent when the server answered a repeated `clientMsgId`. */
  pos?: number;
}

export interface ClientEvents {
  state: { state: ConnectionState };
  /** Authenticated (first time or after a reconnect). */
  ready: { userId: string; resumeAfter: number; lastPos: number; reconnect: boolean };
  /** A chat message of one of the user's conversations: once per message id, in `pos` order. */
  message: TimelineMessage;
  /** A message this client sent, now stored. */
  sent: SentEvent;
  membership: TimelineMembership;
  /** A message of one of the user's conversations was edited (by its sender, maybe from this client). */
  edited: TimelineEdit;
  /** A message was deleted (by its sender or a group's owner/admin). */
  deleted: TimelineDelete;
  /** Another member delivered (some device acknowledged) or read messages up to these seqs. */
  receipt: ReceiptEvent;
  /** This user's own read position moved (from any of their sessions, this one included). */
  read: { conversationId: string; readSeq: number };
  /** A user sharing a conversation with this one went online or offline. */
  presence: { userId: string; online: boolean };
  typing: { senderId: string; isTyping: boolean; conversationId?: string };
  /** Retention deleted events after `after` and before `firstPos`: page `history` to fill in. */
  pruned: { after: number; firstPos: number };
  /**
   * The server's cluster bus may have lost frames. Timeline events follow by themselves; `receipt`,
   * `read`, `presence` and `typing` events may have been missed: ask again for what you show
   * (`listConversations`, `history`'s receipts, `presence`).
   */
  resync: Record<string, never>;
  /** A missing `pos` was detected; the client resumes from `after`. */
  gap: { after: number; got: number };
  /** The socket closed; `retryInMs` is absent when the client stops for good. */
  disconnected: { code: number; reason: string; retryInMs?: number };
  /** The client stopped for good: `reason` says why (a permanent refusal, or `close()`). */
  closed: { reason: string; permanent: boolean };
  /** An `error` frame that answered nothing of ours, or an application listener that threw. */
  error: { reason: string; details?: unknown };
}
