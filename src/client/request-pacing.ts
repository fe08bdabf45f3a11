/**
 * Client-side pacing of the frames that spend one of the server's per-user budgets: the request
 * budget (`limits.requests`, 20 per 1000 ms by default: `history`, `list_conversations`, `read`,
 * `presence`, `set_presence`, `list_sessions`, `end_session` and `ack`) and the message budget's
 * burst window (`rateLimit.burstLimit` / `burstWindow`, 10 per 1000 ms by default: `chat_message`,
 * `edit_message`, `delete_message`). Each refusal over such a budget is a strike towards close
 * 4029 and a penalty, so the SDK keeps under it by itself: a sliding window of the times it sent
 * such frames, and how long until the next may go. The budgets are the user's: a window is
 * emptied (`reset`) when another user signs in on the same client.
 */
import type { Clock } from './clock.js';

export interface RequestBudget {
  /** Frames that spend the budget, at most this many … */
  limit: number;
  /** … in any interval this long (ms). */
  windowMs: number;
}

/** A little under the server's default (20 / 1000 ms): room for frames bunched up on the way. */
export const DEFAULT_REQUEST_BUDGET: RequestBudget = { limit: 10, windowMs: 1000 };

/**
 * Half the server's default burst window for messages, edits and deletes (`rateLimit.burstLimit`
 * 10 per `burstWindow` 1000 ms): two windows' worth of sends still fit in one of the server's, so
 * sends bunched up on the way (a stalled network or event loop delivering one batch late, the
 * next on time) are not refused. The server's `messagesPerMinute` (60) caps a user's sustained
 * rate far lower anyway: this only spreads a burst.
 */
export const DEFAULT_SEND_BUDGET: RequestBudget = { limit: 5, windowMs: 1000 };

/** The frame types that spend `limits.requests` (group changes spend budgets of their own). */
const BUDGETED: ReadonlySet<unknown> = new Set(['history', 'list_conversations', 'read', 'presence', 'set_presence', 'list_sessions', 'end_session', 'ack']);

export const spendsRequestBudget = (type: unknown): boolean => BUDGETED.has(type);

export class RequestPacer {
  /** When each frame still inside the window went out (clock ms), oldest first. */
  private readonly sent: number[] = [];
  private readonly limit: number;
  private readonly holdMs: number;

  constructor(
    private readonly clock: Clock,
    budget: RequestBudget,
    /** What an ill-formed `limit` or `windowMs` falls back to. */
    fallback: RequestBudget = DEFAULT_REQUEST_BUDGET,
  ) {
    this.limit = Number.isFinite(budget.limit) ? Math.max(1, Math.floor(budget.limit)) : fallback.limit;
    const windowMs = Number.isFinite(budget.windowMs) && budget.windowMs > 0 ? budget.windowMs : fallback.windowMs;
    // The server's windows are bucketed (a tenth of the window each): a frame may count up to one
    // bucket longer than the window. Holding each slot that much longer keeps a burst right at
    // the window's end from meeting the previous one's frames still counted.
    this.holdMs = windowMs + Math.ceil(windowMs / 10);
  }

  /** Ms until one more frame may go (0: now). */
  wait(): number {
    const now = this.clock.now();
    while (this.sent.length > 0 && this.sent[0]! + this.holdMs <= now) this.sent.shift();
    // Slots from beyond one hold ahead (the clock stepped back further than that) are let go.
    while (this.sent.length > 0 && this.sent[this.sent.length - 1]! > now + this.holdMs) this.sent.pop();
    if (this.sent.length < this.limit) return 0;
    // A clock stepped back cannot hold a frame longer than one slot's hold.
    return Math.min(this.holdMs, Math.max(1, this.sent[this.sent.length - this.limit]! + this.holdMs - now));
  }

  /** Forgets every slot spent (another user's budget starts empty). */
  reset(): void {
    this.sent.length = 0;
  }

  /** Counts one frame sent now (after a 0 from `wait`, or regardless when the client must). */
  spend(): void {
    // Kept in order when the clock stepped back: the oldest slot is always the first to free.
    const now = this.clock.now();
    const last = this.sent[this.sent.length - 1];
    this.sent.push(last !== undefined && last > now ? last : now);
  }
}
