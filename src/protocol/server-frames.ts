/** Types of every server → client frame (wire protocol v1). */
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

export interface ChatMessage {
  id: string;
  senderId: string;
  recipientId: string;
  content: string;
  replyTo?: string;
  attachments?: Attachment[];
  mentions: string[];
  hashtags: string[];
  links: Link[];
  timestamp: number;
}

export interface ValidationDetail {
  path: string;
  rule: string;
}

export type ServerFrame =
  | { type: 'auth_success'; userId: string }
  | { type: 'auth_failure'; reason: AuthFailureReasonValue }
  | ({ type: 'chat_message' } & ChatMessage)
  | { type: 'message_sent'; id: string; clientMsgId?: string; timestamp: number }
  | { type: 'typing_indicator'; senderId: string; isTyping: boolean }
  | { type: 'history'; peerId: string; messages: ChatMessage[] }
  /** `clientMsgId`: set when the refused frame was a schema-valid chat_message that carried one. */
  | { type: 'error'; reason: ErrorReasonValue; details?: ValidationDetail[]; clientMsgId?: string }
  | { type: 'rate_limited'; reason: RateLimitReasonValue; retryAfter: number; clientMsgId?: string }
  | SessionServerFrame;
