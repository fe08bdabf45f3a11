/**
 * The client's position in its timeline: every event carries `pos` (1, 2, 3, … per user, no
 * gaps). An event at or below the position was processed already (a replay after a reconnect):
 * drop it. One more than the position is next: deliver it. Anything further is a gap: the
 * server promises one contiguous stream per session, so the session is resumed from the position.
 */
export type PosVerdict = 'deliver' | 'duplicate' | 'gap';

export class PosTracker {
  constructor(private position = 0) {}

  get pos(): number {
    return this.position;
  }

  check(pos: number): PosVerdict {
    if (pos <= this.position) return 'duplicate';
    return pos === this.position + 1 ? 'deliver' : 'gap';
  }

  /** Marks `pos` processed (call after the application saw the event). */
  advance(pos: number): void {
    if (pos > this.position) this.position = pos;
  }

  /** Retention deleted events before `firstPos`: the stream continues there. */
  skipTo(firstPos: number): void {
    if (firstPos - 1 > this.position) this.position = firstPos - 1;
  }

  /** The server's timeline is behind us (it was reset): start over from what it says. */
  reset(pos: number): void {
    this.position = pos;
  }
}

/** A bounded set of recently seen ids: remembers the last `limit` insertions. */
export class RecentIds {
  private readonly ids = new Set<string>();
  constructor(private readonly limit = 2000) {}
  has(id: string): boolean {
    return this.ids.has(id);
  }
  add(id: string): void {
    this.ids.delete(id);
    this.ids.add(id);
    if (this.ids.size > this.limit) {
      const oldest = this.ids.values().next().value;
      if (oldest !== undefined) this.ids.delete(oldest);
    }
  }
  /** True when `id` was there. */
  delete(id: string): boolean {
    return this.ids.delete(id);
  }
  clear(): void {
    this.ids.clear();
  }
}

/**
 * This user's own messages reach the application once: as `sent` (confirmed to this client) or as
 * a `message` with `own: true` (its copy in the timeline). A confirmation with `pos` takes its
 * copy's place in the stream, so positions settle it. One without `pos` (a resend the server had
 * stored already) has its copy somewhere in the timeline, before or after it, however many of the
 * user's messages lie between: a window of the last few ids cannot tell. So each way is remembered
 * until the two meet:
 * - confirmed without `pos`: the id waits for its copy (dropped when it comes);
 * - copies handed over while sends are unconfirmed (a late answer without `pos` may name one):
 *   kept until the queue is empty.
 * Both are bounded far beyond what the queue holds; the last few ids are kept besides.
 */
export class OwnMessages {
  private readonly recent = new RecentIds(2000);
  private readonly awaitingCopy = new RecentIds(10_000);
  private readonly copiesWhileUnconfirmed = new RecentIds(50_000);

  /** A copy of an own message in the timeline: true when it is to be handed over (it was not, as `sent`). */
  copy(id: string, sendsUnconfirmed: boolean): boolean {
    if (sendsUnconfirmed) this.copiesWhileUnconfirmed.add(id);
    else this.copiesWhileUnconfirmed.clear();
    return this.placed(id);
  }

  /**
   * A send confirmed with `pos`, in its place in the stream (it stands for its copy): true when it
   * is to be handed over — not when an answer without `pos` to a repeat of it was handed over first.
   */
  placed(id: string): boolean {
    const handed = this.awaitingCopy.delete(id) || this.recent.has(id);
    this.recent.add(id);
    return !handed;
  }

  /** A send confirmed without `pos`: true when it is to be handed over as `sent` (its copy was not). */
  confirmedWithoutPos(id: string): boolean {
    if (this.recent.has(id) || this.copiesWhileUnconfirmed.has(id)) return false;
    this.recent.add(id);
    this.awaitingCopy.add(id);
    return true;
  }
}
