/**
 * The protocol's bounds on what the SDK sends (docs/protocol.md §3), checked before a send is
 * queued or a request goes out: a frame the server can never accept would otherwise be refused
 * without its `clientMsgId` or `requestId` (a validation error is decided before the frame is
 * read, so it names neither) or close the socket (over `maxMessageSize`) — a send would be resent
 * after every reconnect, a request would wait for its timeout. The bounds are the protocol's own
 * (protocol/bounds.ts); the checks are written here, not taken from the server's zod schemas, so
 * the browser bundle carries no validator. A unit test (client-outgoing-checks.test.ts) holds
 * every check against the server's schemas.
 */
import {
  MAX_ATTACHMENTS,
  MAX_ATTACHMENT_NAME_LENGTH as MAX_NAME,
  MAX_ATTACHMENT_URL_LENGTH as MAX_URL,
  MAX_CLIENT_MSG_ID,
  MAX_CONTENT_LENGTH as MAX_CONTENT,
  MAX_GROUP_NAME,
  MAX_HISTORY_LIMIT,
  MAX_LIST_LIMIT,
  MAX_MEMBER_IDS,
  characters,
  isWireUuid,
} from '../protocol/bounds.js';
import type { Attachment } from '../protocol/server-frames.js';
import { isHttpUrl } from '../protocol/url.js';

const ATTACHMENT_TYPES: ReadonlySet<string> = new Set(['image', 'file', 'audio']);
/**
 * Bounds the schemas write inline (client-frames.ts, session-frames.ts) rather than in bounds.ts;
 * the modules that hold them import zod, which the browser bundle must not carry.
 */
const MAX_CURSOR = 200;
const MAX_SESSION_ID = 128;
/** Opaque client-chosen keys (`clientMsgId`, `requestId`, `deviceId`, `sessionId`): printable ASCII, no spaces. */
const PRINTABLE = /^[\x21-\x7e]+$/;
const GROUP_ROLES: ReadonlySet<unknown> = new Set(['admin', 'member']);

/** An id as the server accepts it (protocol/bounds.ts). */
export const isUuid = isWireUuid;

/** Content of a message or an edit: 1..5000 characters. */

export function contentProblem(content: unknown): string | undefined {
  if (typeof content !== 'string' || content.length === 0) return 'content: empty';
  if (characters(content) > MAX_CONTENT) return `content: over ${MAX_CONTENT} characters`;
  return undefined;
}

export function attachmentsProblem(attachments: readonly Attachment[] | undefined): string | undefined {
  if (attachments === undefined) return undefined;
  if (attachments.length > MAX_ATTACHMENTS) return `attachments: over ${MAX_ATTACHMENTS}`;
  for (const a of attachments) {
    if (!ATTACHMENT_TYPES.has(a.type)) return 'attachments.type: image, file or audio';
    if (typeof a.url !== 'string' || characters(a.url) > MAX_URL || !isHttpUrl(a.url)) return 'attachments.url: an http(s) URL';
    if (typeof a.name !== 'string' || a.name.length === 0 || characters(a.name) > MAX_NAME) return `attachments.name: 1..${MAX_NAME} characters`;
  }
  return undefined;
}

/** An opaque key: 1..`max` printable ASCII characters (0x21–0x7e). The value is never echoed. */
function tokenProblem(field: string, value: unknown, max: number): string | undefined {
  if (typeof value === 'string' && value.length >= 1 && value.length <= max && PRINTABLE.test(value)) return undefined;
  return `${field}: 1..${max} printable ASCII characters, no spaces`;
}

/**
 * A caller-chosen `clientMsgId`. Checked before the send is queued: refused by the schema, it
 * would get a `validation_failed` naming no `clientMsgId` and stay queued, resent on every reconnect.
 */
export function clientMsgIdProblem(clientMsgId: unknown): string | undefined {
  return tokenProblem('clientMsgId', clientMsgId, MAX_CLIENT_MSG_ID);
}

/**
 * The `deviceId` option: 1..64 printable ASCII (the `auth` frame's `deviceId`, `token64` in
 * client-frames.ts, bounded like a `clientMsgId`). Refused by the schema, every `auth` would fail
 * validation (close 4002) and the client would reconnect with backoff forever; the constructor
 * throws instead.
 */
export function deviceIdProblem(deviceId: unknown): string | undefined {
  return tokenProblem('deviceId', deviceId, MAX_CLIENT_MSG_ID);
}

const uuidProblem = (field: string, value: unknown): string | undefined => (isUuid(value) ? undefined : `${field}: a UUID`);

/**
 * Where a message or a typing indicator goes: exactly one of `conversationId` and `recipientId`
 * (an absent or `undefined` key is no key: JSON drops it), a UUID. TypeScript lets both through
 * (a key of another member of a union is not an excess property), and the server refuses the frame
 * without naming it: a message would stay queued, resent on every reconnect; every refused typing
 * indicator would be a strike towards close 4029.
 */
export function targetProblem(target: unknown): string | undefined {
  const t = typeof target === 'object' && target !== null ? (target as { conversationId?: unknown; recipientId?: unknown }) : {};
  if ((t.conversationId === undefined) === (t.recipientId === undefined)) return 'target: exactly one of conversationId and recipientId';
  return t.conversationId !== undefined ? uuidProblem('conversationId', t.conversationId) : uuidProblem('recipientId', t.recipientId);
}
/** A timeline position or seq: an integer from 0 to 2^53 − 1. */
const positionProblem = (field: string, value: unknown): string | undefined =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? undefined : `${field}: an integer from 0 to 2^53 − 1`;
const booleanProblem = (field: string, value: unknown): string | undefined => (typeof value === 'boolean' ? undefined : `${field}: a boolean`);
/** Absent fields (`undefined` is dropped by JSON.stringify) are not checked. */
const optional = (value: unknown, check: () => string | undefined): string | undefined => (value === undefined ? undefined : check());

function limitProblem(value: unknown, max: number): string | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= max ? undefined : `limit: an integer from 1 to ${max}`;
}

function nameProblem(value: unknown): string | undefined {
  return typeof value === 'string' && value.length >= 1 && characters(value) <= MAX_GROUP_NAME ? undefined : `name: 1..${MAX_GROUP_NAME} characters`;
}

/** `memberIds` (create_group: may be empty) or `userIds` (add/remove: at least one): up to 256 UUIDs. */
function idsProblem(field: string, value: unknown, min: number): string | undefined {
  if (!Array.isArray(value) || value.length < min || value.length > MAX_MEMBER_IDS) return `${field}: ${min}..${MAX_MEMBER_IDS} UUIDs`;
  return value.every(isUuid) ? undefined : `${field}: UUIDs only`;
}

/**
 * Why the server would refuse this request frame (without its `requestId`), or undefined. Covers
 * every request the SDK sends; `requestId` itself is the SDK's own (`r` + a counter) and always
 * valid. Field by field as client-frames.ts and session-frames.ts have them.
 */
export function requestProblem(frame: Readonly<Record<string, unknown>>): string | undefined {
  const f = frame;
  switch (f.type) {
    case 'history':
      if ((f.conversationId === undefined) === (f.peerId === undefined)) return 'conversationId/peerId: exactly one of them';
      return (
        optional(f.conversationId, () => uuidProblem('conversationId', f.conversationId)) ??
        optional(f.peerId, () => uuidProblem('peerId', f.peerId)) ??
        optional(f.beforeSeq, () => positionProblem('beforeSeq', f.beforeSeq)) ??
        optional(f.limit, () => limitProblem(f.limit, MAX_HISTORY_LIMIT))
      );
    case 'list_conversations':
      return (
        optional(f.limit, () => limitProblem(f.limit, MAX_LIST_LIMIT)) ??
        optional(f.before, () => (typeof f.before === 'string' && f.before.length >= 1 && f.before.length <= MAX_CURSOR ? undefined : `before: 1..${MAX_CURSOR} characters (a nextCursor)`))
      );
    case 'read':
      return uuidProblem('conversationId', f.conversationId) ?? positionProblem('upToSeq', f.upToSeq) ?? optional(f.private, () => booleanProblem('private', f.private));
    case 'presence':
    case 'leave_group':
      return uuidProblem('conversationId', f.conversationId);
    case 'set_presence':
      return booleanProblem('visible', f.visible);
    case 'create_group':
      return nameProblem(f.name) ?? idsProblem('memberIds', f.memberIds, 0) ?? optional(f.clientMsgId, () => clientMsgIdProblem(f.clientMsgId));
    case 'add_members':
    case 'remove_members':
      return uuidProblem('conversationId', f.conversationId) ?? idsProblem('userIds', f.userIds, 1);
    case 'rename_group':
      return uuidProblem('conversationId', f.conversationId) ?? nameProblem(f.name);
    case 'set_role':
      return uuidProblem('conversationId', f.conversationId) ?? uuidProblem('userId', f.userId) ?? (GROUP_ROLES.has(f.role) ? undefined : 'role: admin or member');
    case 'end_session':
      return tokenProblem('sessionId', f.sessionId, MAX_SESSION_ID);
    default:
      return undefined; // list_sessions: nothing to check
  }
}
