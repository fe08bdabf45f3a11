/**
 * The commonest frame checked without the generic validator: a `chat_message` with a target,
 * content and maybe a `clientMsgId`, and nothing else. Every frame crosses the schema step, and
 * zod's discriminated union costs several times this check for this shape. Anything else (other
 * keys, attachments, replyTo, any doubt) returns undefined and goes through the schema, which
 * alone words the refusals. Accepts only what `ClientFrame` accepts, with the same value (a
 * seeded property test holds it to that).
 */
import { z } from 'zod';
import { MAX_CLIENT_MSG_ID, MAX_CONTENT_LENGTH } from './bounds.js';
import type { ChatMessageFrame } from './client-frames.js';

/** The schema's own UUID pattern (`z.uuid()`), not a copy of it. */
const UUID = z.regexes.uuid();
/** `token64` in client-frames.ts. */
const PRINTABLE = /^[\x21-\x7e]+$/;

const isUuid = (v: unknown): v is string => typeof v === 'string' && v.length === 36 && UUID.test(v);

export function plainChatMessage(value: Record<string, unknown>): ChatMessageFrame | undefined {
  let keys = 0;
  for (const key in value) {
    if (key !== 'type' && key !== 'content' && key !== 'recipientId' && key !== 'conversationId' && key !== 'clientMsgId') return undefined;
    keys++;
  }
  if (value.type !== 'chat_message') return undefined;
  const content = value.content;
  if (typeof content !== 'string' || content.length === 0 || content.length > MAX_CONTENT_LENGTH) return undefined;
  const { recipientId, conversationId, clientMsgId } = value;
  // Exactly one target.
  if (recipientId !== undefined ? conversationId !== undefined || !isUuid(recipientId) : !isUuid(conversationId)) return undefined;
  if (clientMsgId !== undefined && (typeof clientMsgId !== 'string' || clientMsgId.length > MAX_CLIENT_MSG_ID || !PRINTABLE.test(clientMsgId))) return undefined;
  // type, content, the target, and the key if present: no key was an own property set to undefined.
  if (keys !== (clientMsgId !== undefined ? 4 : 3)) return undefined;
  return value as ChatMessageFrame;
}
