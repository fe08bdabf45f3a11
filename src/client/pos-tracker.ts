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
}
