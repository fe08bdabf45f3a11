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
  /** Time of the latest edit (content is the latest). */
  editedAt?: number;
  /** A tombstone: content `""`, no entities or attachments. */
  deletedAt?: number;
  deletedBy?: string;
}

/** An edit of a message: a timeline event with its own `seq`. `content`… is the new body (`""` once the message was deleted). */
export interface MessageEdited {
  id: string;
  conversationId: string;
  seq: number;
  messageId: string;
  actorId: string;
  content: string;
  mentions: string[];
  hashtags: string[];
  links: Link[];
  editedAt: number;
  timestamp: number;
}

/** A deletion of a message: a timeline event with its own `seq`. */
export interface MessageDeleted {
  id: string;
  conversationId: string;
  seq: number;
  messageId: string;
  actorId: string;
  deletedAt: number;
  timestamp: number;
}

/** A member's receipt positions (seqs). */
export interface MemberReceiptInfo {
  userId: string;
  delivered: number;
  read: number;
}

/**
 * Receipt positions of the other current members: `delivered`/`read` are the minimum over them
 * (every other member has these seqs); `members` lists each one when there are at most
 * `chat.receiptMembersMax` of them.
 */
export interface ReceiptsInfo {
  delivered: number;
  read: number;
  members?: MemberReceiptInfo[];
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

/** Any timeline event without its `pos`. */
export type TimelineItem = HistoryItem | ({ type: 'message_edited' } & MessageEdited) | ({ type: 'message_deleted' } & MessageDeleted);

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
  /** Absent with `chat.receipts: "off"`. */
  receipts?: ReceiptsInfo;
}

export interface ValidationDetail {
  path: string;
  rule: string;
}

/** Frames that are timeline events: each carries the user's timeline position `pos`. */
export type TimelineFrame =
  | ({ type: 'chat_message'; pos: number } & ChatMessage)
  | ({ type: 'membership'; pos: number } & MembershipChange)
  | ({ type: 'message_edited'; pos: number } & MessageEdited)
  | ({ type: 'message_deleted'; pos: number } & MessageDeleted);

export type ServerFrame =
  /** `resumeAfter`: the replay starts after this position; `lastPos`: the user's last position at auth. */
  | { type: 'auth_success'; userId: string; resumeAfter?: number; lastPos?: number }
  | { type: 'auth_failure'; reason: AuthFailureReasonValue }
  | TimelineFrame
  /** The message is durably stored. `pos` is absent on the answer to a duplicate `clientMsgId`. */
  | { type: 'message_sent'; id: string; clientMsgId?: string; timestamp: number; conversationId: string; seq: number; pos?: number }
  /** Retention deleted the events after `after` and before `firstPos`: page `history` to fill in. */
  | { type: 'timeline_pruned'; after: number; firstPos: number }
  /**
   * The cluster bus may have lost frames: timeline entries follow from storage by themselves;
   * receipts, read positions, presence and typing may be stale (ask `list_conversations` / `presence` again).
   */
  | { type: 'resync' }
  | { type: 'typing_indicator'; senderId: string; isTyping: boolean; conversationId?: string }
  /** `more`: the page was cut short by the reply size bound (page on with the last message's seq). */
  | { type: 'history'; conversationId?: string; peerId?: string; messages: TimelineItem[]; receipts?: ReceiptsInfo; more?: true; requestId?: string }
  | { type: 'conversations'; conversations: ConversationInfo[]; nextCursor?: string; requestId?: string }
  /** Reply to a group frame: `changed: false` when the request was valid but changed nothing. */
  | { type: 'group_updated'; conversationId: string; changed: boolean; seq?: number; requestId?: string }
  | { type: 'read_updated'; conversationId: string; readSeq: number; requestId?: string }
  /** Another member's receipt positions moved (coalesced per member and conversation). */
  | { type: 'receipt'; conversationId: string; userId: string; delivered?: number; read?: number }
  /** Reply to edit_message / delete_message. `pos` absent: a repeated clientMsgId, or a delete of a tombstone. */
  | { type: 'message_changed'; action: 'edited' | 'deleted'; messageId: string; conversationId: string; seq?: number; clientMsgId?: string; requestId?: string }
  /** Reply to `presence`: the members online now (the caller included when visible). */
  | { type: 'presence'; conversationId: string; online: string[]; requestId?: string }
  /** A user sharing a conversation with the receiver went online or offline. */
  | { type: 'presence_changed'; userId: string; online: boolean }
  /** Reply to `set_presence`. */
  | { type: 'presence_updated'; visible: boolean; requestId?: string }
  /** The answer to `ping`. */
  | { type: 'pong'; requestId?: string }
  /** `clientMsgId`/`requestId`: set when the refused frame was a schema-valid frame that carried one. */
  | { type: 'error'; reason: ErrorReasonValue; details?: ValidationDetail[]; clientMsgId?: string; requestId?: string }
  | { type: 'rate_limited'; reason: RateLimitReasonValue; retryAfter: number; clientMsgId?: string; requestId?: string }
  | SessionServerFrame;
