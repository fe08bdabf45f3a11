/**
 * The highest receipt positions seen per (conversation, member). Positions only grow in storage,
 * but their frames can arrive out of order: a member with devices on two nodes has each node's
 * receipts published on its own schedule. A frame is passed on with only the positions that moved
 * forward, or not at all.
 */
import type { ReceiptsInfo } from '../protocol/server-frames.js';
import type { ReceiptEvent } from './events.js';

/** Keys remembered at most; then forgotten all at once (a late frame may pass once, never a lost one). */
const MAX_KEYS = 10_000;

export class ReceiptPositions {
  readonly #seen = new Map<string, { delivered: number; read: number }>();

  /** `event` reduced to what moved forward, or undefined when nothing did. */
  advance(event: ReceiptEvent): ReceiptEvent | undefined {
    const key = `${event.conversationId}\u0000${event.userId}`;
    let seen = this.#seen.get(key);
    if (seen === undefined) {
      if (this.#seen.size >= MAX_KEYS) this.#seen.clear();
      seen = { delivered: 0, read: 0 };
      this.#seen.set(key, seen);
    }
    const out: ReceiptEvent = { conversationId: event.conversationId, userId: event.userId };
    if (event.delivered !== undefined && event.delivered > seen.delivered) out.delivered = seen.delivered = event.delivered;
    if (event.read !== undefined && event.read > seen.read) out.read = seen.read = event.read;
    return out.delivered === undefined && out.read === undefined ? undefined : out;
  }

  /** Positions a reply listed are known: a `receipt` frame below them, arriving late, is not passed on. */
  seed(conversationId: string, receipts: ReceiptsInfo | undefined): void {
    for (const m of receipts?.members ?? []) this.advance({ conversationId, userId: m.userId, delivered: m.delivered, read: m.read });
  }
}
