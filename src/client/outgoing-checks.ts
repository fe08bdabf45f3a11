/**
 * The protocol's bounds on what the SDK sends (docs/protocol.md §3), checked before a send is
 * queued: a frame the server can never accept would otherwise be refused without its
 * `clientMsgId` (a validation error names no fields' values) or close the socket (over
 * `maxMessageSize`), and be resent after every reconnect. The bounds are the protocol's own
 * (protocol/bounds.ts); the checks are written here, not taken from the server's zod schemas, so
 * the browser bundle carries no validator.
 */
import { MAX_ATTACHMENTS, MAX_ATTACHMENT_NAME_LENGTH as MAX_NAME, MAX_ATTACHMENT_URL_LENGTH as MAX_URL, MAX_CONTENT_LENGTH as MAX_CONTENT, isWireUuid } from '../protocol/bounds.js';
import type { Attachment } from '../protocol/server-frames.js';
import { isHttpUrl } from '../protocol/url.js';

const ATTACHMENT_TYPES: ReadonlySet<string> = new Set(['image', 'file', 'audio']);

/** An id as the server accepts it (protocol/bounds.ts). */
export const isUuid = isWireUuid;

/** Content of a message or an edit: 1..5000 characters. */
export function contentProblem(content: unknown): string | undefined {
  if (typeof content !== 'string' || content.length === 0) return 'content: empty';
  if (content.length > MAX_CONTENT) return `content: over ${MAX_CONTENT} characters`;
  return undefined;
}

export function attachmentsProblem(attachments: readonly Attachment[] | undefined): string | undefined {
  if (attachments === undefined) return undefined;
  if (attachments.length > MAX_ATTACHMENTS) return `attachments: over ${MAX_ATTACHMENTS}`;
  for (const a of attachments) {
    if (!ATTACHMENT_TYPES.has(a.type)) return 'attachments.type: image, file or audio';
    if (typeof a.url !== 'string' || a.url.length > MAX_URL || !isHttpUrl(a.url)) return 'attachments.url: an http(s) URL';
    if (typeof a.name !== 'string' || a.name.length === 0 || a.name.length > MAX_NAME) return `attachments.name: 1..${MAX_NAME} characters`;
  }
  return undefined;
}
