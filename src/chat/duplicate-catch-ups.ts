/**
 * Which resends answered as duplicates make the conversation's members read their timelines
 * (ChatService, MessageChangeService). The read is for a commit whose answer was lost, and its
 * resend follows within minutes: so only an event stored within `windowMs`, and once per event per
 * window. A client replaying an old key, or the same key over and over, costs no member a read.
 */
export class DuplicateCatchUps {
  readonly #hinted = new Map<string, number>();

  constructor(
    private readonly windowMs = 300_000,
    private readonly now: () => number = Date.now,
    /** Events remembered at most (then forgotten all at once: a few extra reads, never a missed one). */
    private readonly maxRemembered = 10_000,
  ) {}

  /** True when the duplicate of `eventId`, stored at `storedAt` (ms), should make the members read. */
  shouldCatchUp(eventId: string, storedAt: number): boolean {
    const now = this.now();
    if (now - storedAt > this.windowMs) return false;
    const last = this.#hinted.get(eventId);
    if (last !== undefined && now - last < this.windowMs) return false;
    if (this.#hinted.size >= this.maxRemembered) this.#hinted.clear();
    this.#hinted.set(eventId, now);
    return true;
  }
}
