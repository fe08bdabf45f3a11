/**
 * The protocol's bounds on client frames (docs/protocol.md §3) — sizes, and the shape of an id:
 * one place for the server's schemas (client-frames.ts) and the client SDK's checks before
 * sending (no dependencies, so the browser bundle can import it).
 */
export const MAX_CONTENT_LENGTH = 5000;
export const MAX_ATTACHMENTS = 10;
export const MAX_ATTACHMENT_URL_LENGTH = 2048;
export const MAX_ATTACHMENT_NAME_LENGTH = 255;
export const MAX_CLIENT_MSG_ID = 64;
export const MAX_HISTORY_LIMIT = 100;
export const MAX_LIST_LIMIT = 100;
export const MAX_GROUP_NAME = 100;
/**
 * Combining marks in a row that text may carry (default-ignorables among them, such as ZWJ, neither
 * count nor end the run): more stack above and below the line over other messages ("Zalgo" text).
 * Real scripts need a handful (Tibetan stacks, Hebrew points with cantillation); Unicode's
 * stream-safe limit is 30.
 */
export const MAX_COMBINING_MARKS = 16;
/** Ids one group frame may name (`memberIds`, `userIds`); `chat.maxGroupMembers` bounds the group itself. */
export const MAX_MEMBER_IDS = 256;

/**
 * An id the server's schemas accept (zod's `z.uuid()`: RFC 9562 versions 1–8 with the RFC
 * variant, or the nil and max UUIDs). The SDK refuses anything else before sending; a unit test
 * keeps the two in step.
 */
const WIRE_UUID = /^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$/;

export const isWireUuid = (value: unknown): boolean => typeof value === 'string' && WIRE_UUID.test(value);

/**
 * Characters as every text bound of the protocol counts them (zod's schemas count Unicode code
 * points: a surrogate pair is one, a lone surrogate one too), so the server's later checks and the
 * SDK judge a text as the schemas do.
 */
export function characters(value: string): number {
  let n = value.length;
  for (let i = 0; i < value.length - 1; i++) {
    if ((value.charCodeAt(i) & 0xfc00) === 0xd800 && (value.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n--;
      i++;
    }
  }
  return n;
}

/** More than `max` characters; the count runs only when the UTF-16 length could be over. */
export function longerThan(value: string, max: number): boolean {
  return value.length > max && characters(value) > max;
}
