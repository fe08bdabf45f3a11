/**
 * Acknowledgements of processed timeline positions (`ack {upTo}`, cumulative): when the next one
 * goes — `ackDelayMs` after the first unacknowledged event or at `ackEvery` of them, never sooner
 * than `ackDelayMs` after the last, after the server's wait and within the request budget — and
 * how far it may reach (what this socket's stream sent). Every flush also saves the position.
 */
import type { TimerSlot, Clock } from './clock.js';
import type { RampartClientOptions } from './client-types.js';
import type { RequestPacer } from './request-pacing.js';

/** What the schedule needs of the client. */
export interface AckContext {
  /** The last timeline position the application processed. */
  pos(): number;
  /** What is left of the server's wait for dropped frames (ms; 0: none). */
  framesWait(): number;
  /** Sends a frame on the open socket; false when there is none. */
  transmit(frame: Record<string, unknown>): boolean;
  /** Saves the sync state (after every flush). */
  persist(): void;
  /** close() ran — possibly from a listener of the event being handled. */
  stopped(): boolean;
}

export class AckSchedule {
  private ackedPos = 0;
  /** When the last ack went out (clock ms): the next waits `ackDelayMs` after it. */
  private lastAckAt: number | undefined;
  /** When the ack timer fires (clock ms), while it runs. */
  private ackDueAt = 0;
  /** An ack is due but the request budget's pacing holds it: it takes the next free slot. */
  private ackHeld = false;
  /**
   * The highest position this socket's stream has reached (its resume point, then every event it
   * sent, replays of what we had included). An ack never goes past it: the server clamps an ack to
   * what the session's stream sent, and a clamped ack we took as done would never be repeated.
   */
  private streamPos = 0;

  constructor(
    private readonly clock: Clock,
    private readonly timer: TimerSlot,
    private readonly pacer: RequestPacer,
    private readonly options: Pick<RampartClientOptions, 'ackDelayMs' | 'ackEvery'>,
    private readonly ctx: AckContext,
  ) {}

  /** An ack is held by the request budget's pacing: the pump lets it go first when a slot frees. */
  get held(): boolean {
    return this.ackHeld;
  }

  /** A new socket authenticated, its stream resuming after `resumeAfter`: nothing acknowledged on it yet. */
  newStream(resumeAfter: number): void {
    this.ackedPos = 0;
    this.streamPos = resumeAfter;
  }

  /** This socket's stream reached `pos` (an event, a replay, the end of a pruned hole). */
  reached(pos: number): void {
    if (pos > this.streamPos) this.streamPos = pos;
  }

  /** A replay of what we had: it may be acknowledged now, up to here. */
  replayed(): void {
    if (this.ackable() > this.ackedPos) this.processed();
  }

  /** Another user signed in: the spacing kept for the last user's request budget is theirs. */
  forgetSpacing(): void {
    this.lastAckAt = undefined;
    this.ackHeld = false;
  }

  processed(): void {
    if (this.ctx.stopped()) return; // a listener closed the client
    const unacked = this.ackable() - this.ackedPos;
    if (unacked >= (this.options.ackEvery ?? 100)) {
      // Enough to acknowledge at once — but acks spend the request budget: a fast replay must not
      // send one every `ackEvery` events, so never sooner than `ackDelayMs` after the last.
      const spacing = this.ackSpacing();
      if (spacing === 0) this.flush();
      else if (!this.timer.active || this.ackDueAt > this.clock.now() + spacing) this.start(spacing);
    } else if (!this.timer.active) this.start(this.delay());
  }

  delay(): number {
    return this.options.ackDelayMs ?? 250;
  }

  /** Ms until the next ack may go (0: now): `ackDelayMs` after the last (a clock stepped back waits no longer). */
  private ackSpacing(): number {
    if (this.lastAckAt === undefined) return 0;
    const delay = this.delay();
    return Math.max(0, Math.min(this.lastAckAt + delay - this.clock.now(), delay));
  }

  start(ms: number): void {
    this.ackDueAt = this.clock.now() + ms;
    this.timer.start(ms, () => this.flush());
  }

  /** What an ack may cover: what we processed, as far as this socket's stream has reached. */
  private ackable(): number {
    return Math.min(this.ctx.pos(), this.streamPos);
  }

  /**
   * Acknowledges the position, unless the server asked for a wait, the last ack went less than
   * `ackDelayMs` ago, or the request budget's pacing has no slot (then after that); `now`:
   * regardless (closing).
   */
  flush(now = false): void {
    this.timer.stop();
    this.ackHeld = false;
    const pos = this.ackable();
    if (pos > this.ackedPos) {
      // The server's wait, the spacing between acks, then a slot of the request budget.
      const wait = now ? 0 : Math.max(this.ctx.framesWait(), this.ackSpacing());
      const paced = now || wait > 0 ? 0 : this.pacer.wait();
      if (wait > 0) this.start(wait);
      else if (paced > 0) {
        this.ackHeld = true; // the pump lets it go first when a slot frees
        this.start(paced);
      } else if (this.ctx.transmit({ type: 'ack', upTo: pos })) {
        this.ackedPos = pos;
        this.lastAckAt = this.clock.now();
        this.pacer.spend();
      }
    }
    this.ctx.persist();
  }

  /**
   * Acks are never answered: after a refusal that may have been an ack's, none is known to have
   * arrived, and the position is acknowledged again after `wait` (`ack {upTo}` is cumulative and
   * idempotent) instead of only when it next moves.
   */
  again(wait: number): void {
    if (this.ackedPos === 0) return; // nothing acknowledged on this socket yet
    this.ackedPos = 0;
    this.start(wait);
  }
}
