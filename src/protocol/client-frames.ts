/**
 * Schemas for every client → server frame (wire protocol v1). Compiled once at import; unknown keys
 * and unknown types are rejected (strict objects in a discriminated union).
 */
import { z } from 'zod';
import { isHttpUrl } from './url.js';
import { EndSessionFrame, ListSessionsFrame } from './session-frames.js';

export const MAX_CONTENT_LENGTH = 5000;
export const MAX_ATTACHMENTS = 10;
export const MAX_CLIENT_MSG_ID = 64;
export const MAX_HISTORY_LIMIT = 100;
export const MAX_ACK_IDS = 500;

const userId = z.uuid();

export const AuthFrame = z.strictObject({
  type: z.literal('auth'),
  token: z.string().min(1),
  /** Opaque, stable name of the client's device (shown in `sessions`). */
  deviceId: z.string().min(1).max(64).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces').optional(),
});

export const AttachmentSchema = z.strictObject({
  type: z.enum(['image', 'file', 'audio']),
  url: z.string().max(2048).refine(isHttpUrl, { message: 'must be an http(s) URL' }),
  name: z.string().min(1).max(255),
});

export const ChatMessageFrame = z.strictObject({
  type: z.literal('chat_message'),
  recipientId: userId,
  content: z.string().min(1).max(MAX_CONTENT_LENGTH),
  replyTo: z.uuid().optional(),
  attachments: z.array(AttachmentSchema).max(MAX_ATTACHMENTS).optional(),
  clientMsgId: z.string().min(1).max(MAX_CLIENT_MSG_ID).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces').optional(),
});

export const TypingIndicatorFrame = z.strictObject({
  type: z.literal('typing_indicator'),
  recipientId: userId,
  isTyping: z.boolean(),
});

export const AckFrame = z.strictObject({
  type: z.literal('ack'),
  messageIds: z.array(z.uuid()).min(1).max(MAX_ACK_IDS),
});

export const HistoryFrame = z.strictObject({
  type: z.literal('history'),
  peerId: userId,
  /** Cursor: the id of the oldest message of the previous page. */
  before: z.uuid().optional(),
  limit: z.number().int().min(1).max(MAX_HISTORY_LIMIT).optional(),
});

export const ClientFrame = z.discriminatedUnion('type', [
  AuthFrame,
  ChatMessageFrame,
  TypingIndicatorFrame,
  AckFrame,
  HistoryFrame,
  ListSessionsFrame,
  EndSessionFrame,
]);

export type AuthFrame = z.infer<typeof AuthFrame>;
export type AttachmentInput = z.infer<typeof AttachmentSchema>;
export type ChatMessageFrame = z.infer<typeof ChatMessageFrame>;
export type TypingIndicatorFrame = z.infer<typeof TypingIndicatorFrame>;
export type AckFrame = z.infer<typeof AckFrame>;
export type HistoryFrame = z.infer<typeof HistoryFrame>;
export type ClientFrame = z.infer<typeof ClientFrame>;
export type ClientFrameType = ClientFrame['type'];
export const CLIENT_FRAME_TYPES: ReadonlySet<string> = new Set(['auth', 'chat_message', 'typing_indicator', 'ack', 'history', 'list_sessions', 'end_session']);
