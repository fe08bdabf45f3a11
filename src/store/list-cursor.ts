/**
 * The opaque `nextCursor` of `list_conversations`: the last listed conversation's (lastActivityAt,
 * conversation uuid), as base64url JSON `[lastAt, uuid]` — PostgreSQL's format from the start, so
 * nodes of a cluster in a rolling upgrade read each other's. One format for both stores, so a page
 * the chat service cuts short (reply size bound) can name where the next one starts. The SQLite
 * adapter's earlier `lastAt|uuid` cursors are still read.
 */
import { isUuid } from './uuid-bytes.js';

export function encodeListCursor(lastAt: number, conversationId: string): string {
  return Buffer.from(JSON.stringify([lastAt, conversationId]), 'utf8').toString('base64url');
}

/** The cursor's position, or undefined when it is not one. */
export function decodeListCursor(cursor: string): { lastAt: number; conversationId: string } | undefined {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  let lastAt: unknown;
  let conversationId: unknown;
  if (text.startsWith('[')) {
    try {
      const value = JSON.parse(text) as unknown;
      if (Array.isArray(value) && value.length === 2) [lastAt, conversationId] = value as unknown[];
    } catch {
      return undefined;
    }
  } else {
    const bar = text.indexOf('|');
    if (bar <= 0) return undefined;
    lastAt = Number(text.slice(0, bar));
    conversationId = text.slice(bar + 1);
  }
  if (typeof lastAt !== 'number' || !Number.isSafeInteger(lastAt) || typeof conversationId !== 'string' || !isUuid(conversationId)) return undefined;
  return { lastAt, conversationId: conversationId.toLowerCase() };
}
