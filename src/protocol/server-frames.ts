/** Types of every server → client frame (wire protocol v2). */
import type { AuthFailureReasonValue, ErrorReasonValue, RateLimitReasonValue } from './reasons.js';
import type { SessionServerFrame } from './session-frames.js';

export interface Attachment {
  type: 'image' | 'file' | 'audio';
  url: string;
  name: string;
}

export interface Link {
  url: string;
  safe: boolean;
}

/** A chat message on the wire (live, replayed, in history and in conversation lists). */
export interface ChatMessage {
  id: string;
  conversationId: string;
  /** Position of the message in its conversation: 1, 2, 3, … */
  seq: number;
  senderId: string;
  /** Direct conversations only: the other member (v1 field). */
  recipientId?: string;
  content: string;
  replyTo?: string;
  attachments?: Attachment[];
  mentions: string[];
  hashtags: string[];
  links: Link[];
  timestamp: number;
}

export type MembershipActionValue = 'created' | 'added' | 'removed' | 'left' | 'renamed' | 'role_changed';

/** A change of a group's membership, name or roles: an event of the conversation (it has a `seq`). */
export interface MembershipChange {
  id: string;
  conversationId: string;
  seq: number;
  action: MembershipActionValue;
  actorId: string;
  userIds: string[];
  name?: string;
  role?: 'owner' | 'admin' | 'member';
  newOwnerId?: string;
  timestamp: number;
}

/** One item of a `history` page: a chat message or a membership change, told apart by `type`. */
export type HistoryItem = ({ type: 'chat_message' } & ChatMessage) | ({ type: 'membership' } & MembershipChange);

export interface ConversationInfo {
  conversationId: string;
  kind: 'direct' | 'group';
  name?: string;
  peerId?: string;
  role: 'owner' | 'admin' | 'member';
  memberCount: number;
  lastSeq: number;
  lastActivityAt: number;
  lastMessage?: ChatMessage;
  readSeq: number;
  unreadCount: number;
}

export interface ValidationDetail {
  path: string;
  rule: string;
}

/** Frames that are timeline events: each carries the user's timeline position `pos`. */
export type TimelineFrame =
  | ({ type: 'chat_message'; pos: number } & ChatMessage)
  | ({ type: 'membership'; pos: number } & MembershipChange);

export type ServerFrame =
  /** `resumeAfter`: the replay starts after this position; `lastPos`: the user's last position at auth. */
  | { type: 'auth_success'; userId: string; resumeAfter?: number; lastPos?: number }
  | { type: 'auth_failure'; reason: AuthFailureReasonValue }
  | TimelineFrame
  /** The message is durably stored. `pos` is absent on the answer to a duplicate `clientMsgId`. */
  | { type: 'message_sent'; id: string; clientMsgId?: string; timestamp: number; conversationId: string; seq: number; pos?: number }
  /** Retention deleted the events after `after` and before `firstPos`: page `history` to fill in. */
  | { type: 'timeline_pruned'; after: number; firstPos: number }
  | { type: 'typing_indicator'; senderId: string; isTyping: boolean; conversationId?: string }
  | { type: 'history'; conversationId?: string; peerId?: string; messages: HistoryItem[]; requestId?: string }
  | { type: 'conversations'; conversations: ConversationInfo[]; nextCursor?: string; requestId?: string }
  /** Reply to a group frame: `changed: false` when the request was valid but changed nothing. */
  | { type: 'group_updated'; conversationId: string; changed: boolean; seq?: number; requestId?: string }
  | { type: 'read_updated'; conversationId: string; readSeq: number; requestId?: string }
  /** `clientMsgId`/`requestId`: set when the refused frame was a schema-valid frame that carried one. */
  | { type: 'error'; reason: ErrorReasonValue; details?: ValidationDetail[]; clientMsgId?: string; requestId?: string }
  | { type: 'rate_limited'; reason: RateLimitReasonValue; retryAfter: number; clientMsgId?: string; requestId?: string }
  | SessionServerFrame;
