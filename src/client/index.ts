/**
 * `rampart/client`: the Rampart client SDK. Runs in browsers with no dependency (the global
 * WebSocket) and in Node (see `rampart/client/node` for `ws` and the file store). Types, close
 * codes and reasons come from the server's own protocol module.
 */
export { RampartClient, ConnectError, type RampartClientOptions, type HistoryReply, type ConversationsReply, type GroupReply, type PresenceReply } from './rampart-client.js';
export type { ClientEvents, ConnectionState, TimelineMessage, TimelineMembership, TimelineEdit, TimelineDelete, ReceiptEvent, SentEvent } from './events.js';
export { SendError, type SendReceipt, type ChangeReceipt, type Target, type OutgoingMessage } from './send-queue.js';
export { RequestError } from './requests.js';
export { MemorySyncStore, WebStorageSyncStore, IllFormedSyncStateError, newDeviceId, type SyncState, type SyncStore, type WebStorageLike } from './sync-store.js';
export { backoffDelay, backoffCeiling, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export { tokenExpiry, refreshDelay, type TokenProvider, type RefreshOptions } from './token-source.js';
export { DEFAULT_REQUEST_BUDGET, DEFAULT_SEND_BUDGET, type RequestBudget } from './request-pacing.js';
export { classifyClose, type CloseVerdict } from './refusals.js';
export type { Clock } from './clock.js';
export type { WebSocketLike, WebSocketFactory } from './socket.js';
export { CloseCode } from '../protocol/close-codes.js';
export { ErrorReason, AuthFailureReason, RateLimitReason } from '../protocol/reasons.js';
export type { ChatMessage, MembershipChange, MessageEdited, MessageDeleted, ReceiptsInfo, MemberReceiptInfo, ConversationInfo, HistoryItem, Attachment, ServerFrame } from '../protocol/server-frames.js';
export type { SessionInfo } from '../protocol/session-frames.js';
