/**
 * Schemas for every client → server frame (wire protocol v2; the v1 shapes of `chat_message` and
 * `typing_indicator` with `recipientId` are kept). Compiled once at import; unknown keys and
 * unknown types are rejected (strict objects in a discriminated union).
 */
import { z } from 'zod';
import { isHttpUrl } from './url.js';
import { EndSessionFrame, ListSessionsFrame } from './session-frames.js';

import {
  MAX_ATTACHMENTS,
  MAX_ATTACHMENT_NAME_LENGTH,
  MAX_ATTACHMENT_URL_LENGTH,
  MAX_CLIENT_MSG_ID,
  MAX_CONTENT_LENGTH,
  MAX_GROUP_NAME,
  MAX_HISTORY_LIMIT,
  MAX_LIST_LIMIT,
  MAX_MEMBER_IDS,
} from './bounds.js';

export { MAX_ATTACHMENTS, MAX_CLIENT_MSG_ID, MAX_CONTENT_LENGTH, MAX_GROUP_NAME, MAX_HISTORY_LIMIT, MAX_LIST_LIMIT, MAX_MEMBER_IDS };

/** Timeline positions and seqs fit a JS safe integer. */
const position = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const userId = z.uuid();
const conversationId = z.uuid();
/** Opaque client-chosen keys: printable ASCII without spaces. */
const token64 = z.string().min(1).max(MAX_CLIENT_MSG_ID).regex(/^[\x21-\x7e]+$/, 'printable ASCII without spaces');
/** Echoed in the reply (or error) to this request. */
const requestId = token64.optional();

/** Exactly one of `recipientId` (direct, v1) and `conversationId`. */
function oneTarget(frame: { recipientId?: string | undefined; conversationId?: string | undefined }): boolean {
  return (frame.recipientId === undefined) !== (frame.conversationId === undefined);
}
const ONE_TARGET = { message: 'exactly one of recipientId and conversationId', path: ['recipientId'] };

export const AuthFrame = z.strictObject({
  type: z.literal('auth'),
  token: z.string().min(1),
  /** Stable, opaque id of the client's device: its acknowledged position is kept per device. */
  deviceId: token64.optional(),
  /** Resume after this timeline position (overrides the device's stored position). */
  after: position.optional(),
});

export const AttachmentSchema = z.strictObject({
  type: z.enum(['image', 'file', 'audio']),
  url: z.string().max(MAX_ATTACHMENT_URL_LENGTH).refine(isHttpUrl, { message: 'must be an http(s) URL' }),
  name: z.string().min(1).max(MAX_ATTACHMENT_NAME_LENGTH),
});

export const ChatMessageFrame = z
  .strictObject({
    type: z.literal('chat_message'),
    recipientId: userId.optional(),
    conversationId: conversationId.optional(),
    content: z.string().min(1).max(MAX_CONTENT_LENGTH),
    replyTo: z.uuid().optional(),
    attachments: z.array(AttachmentSchema).max(MAX_ATTACHMENTS).optional(),
    clientMsgId: token64.optional(),
  })
  .refine(oneTarget, ONE_TARGET);

export const TypingIndicatorFrame = z
  .strictObject({
    type: z.literal('typing_indicator'),
    recipientId: userId.optional(),
    conversationId: conversationId.optional(),
    isTyping: z.boolean(),
  })
  .refine(oneTarget, ONE_TARGET);

export const AckFrame = z.strictObject({
  type: z.literal('ack'),
  /** Everything up to and including this timeline position was processed by this device. */
  upTo: position,
});

export const HistoryFrame = z
  .strictObject({
    type: z.literal('history'),
    conversationId: conversationId.optional(),
    /** v1: the direct conversation with this user. */
    peerId: userId.optional(),
    /** Page of events with `seq < beforeSeq`. */
    beforeSeq: position.optional(),
    /** v1 cursor: the id of the oldest message of the previous page. */
    before: z.uuid().optional(),
    limit: z.number().int().min(1).max(MAX_HISTORY_LIMIT).optional(),
    requestId,
  })
  .refine((f) => (f.conversationId === undefined) !== (f.peerId === undefined), {
    message: 'exactly one of conversationId and peerId',
    path: ['conversationId'],
  });

export const ListConversationsFrame = z.strictObject({
  type: z.literal('list_conversations'),
  limit: z.number().int().min(1).max(MAX_LIST_LIMIT).optional(),
  /** `nextCursor` of the previous page. */
  before: z.string().min(1).max(200).optional(),
  requestId,
});

const groupName = z.string().min(1).max(MAX_GROUP_NAME);
const memberIds = z.array(userId).max(MAX_MEMBER_IDS);

export const CreateGroupFrame = z.strictObject({
  type: z.literal('create_group'),
  name: groupName,
  memberIds,
  requestId,
  /** The client's key: a create resent with it is answered with the group the first one made. */
  clientMsgId: token64.optional(),
});

export const AddMembersFrame = z.strictObject({
  type: z.literal('add_members'),
  conversationId,
  userIds: memberIds.min(1),
  requestId,
});

export const RemoveMembersFrame = z.strictObject({
  type: z.literal('remove_members'),
  conversationId,
  userIds: memberIds.min(1),
  requestId,
});

export const LeaveGroupFrame = z.strictObject({
  type: z.literal('leave_group'),
  conversationId,
  requestId,
});

export const RenameGroupFrame = z.strictObject({
  type: z.literal('rename_group'),
  conversationId,
  name: groupName,
  requestId,
});

export const SetRoleFrame = z.strictObject({
  type: z.literal('set_role'),
  conversationId,
  userId,
  role: z.enum(['admin', 'member']),
  requestId,
});

export const ReadFrame = z.strictObject({
  type: z.literal('read'),
  conversationId,
  upToSeq: position,
  /** Move only the caller's own read position (unread counts); tell no one. */
  private: z.boolean().optional(),
  requestId,
});

export const EditMessageFrame = z.strictObject({
  type: z.literal('edit_message'),
  messageId: z.uuid(),
  content: z.string().min(1).max(MAX_CONTENT_LENGTH),
  /** Idempotency key (shared with chat_message: unique per sender). */
  clientMsgId: token64.optional(),
  requestId,
});

export const DeleteMessageFrame = z.strictObject({
  type: z.literal('delete_message'),
  messageId: z.uuid(),
  clientMsgId: token64.optional(),
  requestId,
});

export const PresenceFrame = z.strictObject({
  type: z.literal('presence'),
  conversationId,
  requestId,
});

export const SetPresenceFrame = z.strictObject({
  type: z.literal('set_presence'),
  /** false: others see this user offline. */
  visible: z.boolean(),
  requestId,
});

/** Client-side liveness: answered with `pong` at once (a browser cannot see WebSocket pings). */
export const PingFrame = z.strictObject({
  type: z.literal('ping'),
  requestId,
});

export const ClientFrame = z.discriminatedUnion('type', [
  AuthFrame,
  ChatMessageFrame,
  TypingIndicatorFrame,
  AckFrame,
  HistoryFrame,
  ListConversationsFrame,
  CreateGroupFrame,
  AddMembersFrame,
  RemoveMembersFrame,
  LeaveGroupFrame,
  RenameGroupFrame,
  SetRoleFrame,
  ReadFrame,
  ListSessionsFrame,
  EndSessionFrame,
  EditMessageFrame,
  DeleteMessageFrame,
  PresenceFrame,
  SetPresenceFrame,
  PingFrame,
]);

export type AuthFrame = z.infer<typeof AuthFrame>;
export type AttachmentInput = z.infer<typeof AttachmentSchema>;
export type ChatMessageFrame = z.infer<typeof ChatMessageFrame>;
export type TypingIndicatorFrame = z.infer<typeof TypingIndicatorFrame>;
export type AckFrame = z.infer<typeof AckFrame>;
export type HistoryFrame = z.infer<typeof HistoryFrame>;
export type ListConversationsFrame = z.infer<typeof ListConversationsFrame>;
export type CreateGroupFrame = z.infer<typeof CreateGroupFrame>;
export type AddMembersFrame = z.infer<typeof AddMembersFrame>;
export type RemoveMembersFrame = z.infer<typeof RemoveMembersFrame>;
export type LeaveGroupFrame = z.infer<typeof LeaveGroupFrame>;
export type RenameGroupFrame = z.infer<typeof RenameGroupFrame>;
export type SetRoleFrame = z.infer<typeof SetRoleFrame>;
export type ReadFrame = z.infer<typeof ReadFrame>;
export type EditMessageFrame = z.infer<typeof EditMessageFrame>;
export type DeleteMessageFrame = z.infer<typeof DeleteMessageFrame>;
export type PresenceFrame = z.infer<typeof PresenceFrame>;
export type SetPresenceFrame = z.infer<typeof SetPresenceFrame>;
export type PingFrame = z.infer<typeof PingFrame>;
export type ClientFrame = z.infer<typeof ClientFrame>;
export type ClientFrameType = ClientFrame['type'];
/** Frames that change a group's membership or name (their own per-user rate limit). */
export type GroupChangeFrame = CreateGroupFrame | AddMembersFrame | RemoveMembersFrame | LeaveGroupFrame | RenameGroupFrame | SetRoleFrame;
export const CLIENT_FRAME_TYPES: ReadonlySet<string> = new Set(ClientFrame.options.map((o) => o.shape.type.value));
