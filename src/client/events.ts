/** The typed events and options of RampartClient. Frame types come from src/protocol. */
import type { ChatMessage, MembershipChange } from '../protocol/server-frames.js';

export type ConnectionState = 'idle' | 'connecting' | 'authenticating' | 'open' | 'reconnecting' | 'closed';

export interface TimelineMessage extends ChatMessage {
  pos: number;
  /** Sent by this user (from another device, or from this one before a reconnect). */
  own: boolean;
}

export interface TimelineMembership extends MembershipChange {
  pos: number;
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
  typing: { senderId: string; isTyping: boolean; conversationId?: string };
  /** Retention deleted events after `after` and before `firstPos`: page `history` to fill in. */
  pruned: { after: number; firstPos: number };
  /** A missing `pos` was detected; the client resumes from `after`. */
  gap: { after: number; got: number };
  /** The socket closed; `retryInMs` is absent when the client stops for good. */
  disconnected: { code: number; reason: string; retryInMs?: number };
  /** The client stopped for good: `reason` says why (a permanent refusal, or `close()`). */
  closed: { reason: string; permanent: boolean };
  /** An `error` frame that answered nothing of ours, or an application listener that threw. */
  error: { reason: string; details?: unknown };
}
