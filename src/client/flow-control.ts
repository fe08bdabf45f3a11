/**
 * The waits that hold frames back and the window sends go out through: a wait on the clock
 * (`ServerWait`: the one the server asked for after dropping frames; the sends' one, which is the
 * server's `retryAfter` for the user's message budget or the client's own storage-retry delay) and
 * the send gate (`SendGate`: the sends' wait, the in-flight window, the probation after a
 * `rate_limited` naming a send, the send budget's pacing).
 */
import type { Clock } from './clock.js';
import type { RequestPacer } from './request-pacing.js';
import type { SendQueue } from './send-queue.js';

/** A wait (ms) that holds frames until it ends, measured on the clock. */
export class ServerWait {
  private pausedUntil = 0;
  /** How long that wait was when it was last set (ms): what is left of it is never more. */
  private pauseMs = 0;

  constructor(private readonly clock: Clock) {}

  /**
   * What is left of the wait (ms; 0: none). Never more than the wait was when set: a clock
   * stepped back cannot hold frames (the dropped-frames wait holds liveness pings too) longer
   * than the wait was.
   */
  left(): number {
    return this.leftAt(this.clock.now());
  }

  /** max(the wait still running, this one), from now: one reading of the clock for both. */
  extend(wait: number): void {
    const now = this.clock.now();
    this.pauseMs = Math.max(this.leftAt(now), wait);
    this.pausedUntil = now + this.pauseMs;
  }

  private leftAt(now: number): number {
    return Math.max(0, Math.min(this.pausedUntil - now, this.pauseMs));
  }

  clear(): void {
    this.pausedUntil = 0;
    this.pauseMs = 0;
  }
}

export class SendGate {
  /**
   * Every send waits until it ends: the user's message budget (`rate_limited` naming a send), or
   * a `storage_unavailable` retry. The wait is the queue's, not one send's, so sends go out in the
   * order they were made.
   */
  private readonly pause: ServerWait;
  /**
   * A `rate_limited` named a send: the user's message budget is spent (by other sessions of the
   * user too, or a budget smaller than `sendBudget`). After the wait one send at a time goes out,
   * until one of them is confirmed (`probeId`): refilling the whole in-flight window into a budget
   * that may still be spent would collect a strike per refusal, and 4029.
   */
  private probation = false;
  /** The send put on the wire during the probation: its confirmation ends it. */
  private probeId: string | undefined;

  constructor(
    clock: Clock,
    private readonly queue: SendQueue,
    /** Paces sends, edits and deletes under the server's burst window for the user's messages. */
    private readonly pacer: RequestPacer,
    /** `maxInFlightSends`, read when sends go out. */
    private readonly maxInFlight: () => number,
  ) {
    this.pause = new ServerWait(clock);
  }

  /**
   * Holds every send for `wait` ms (a send to retry keeps its place in the queue, and the sends
   * behind it wait with it: none overtakes it, so an older edit never lands after a newer one).
   * Unlike the wait for dropped frames, it does not end with the socket: the user's message budget
   * and the storage are the server's, not the connection's, so a new connection would be refused
   * the same way; and a wait every send shares cannot reorder them across a reconnect.
   */
  hold(wait: number): void {
    this.pause.extend(wait);
  }

  /** A `rate_limited` named a send: every send waits `wait` ms, then one at a time goes until one is confirmed. */
  rateLimited(wait: number): void {
    this.hold(wait);
    this.probation = true;
    this.probeId = undefined;
  }

  /** A send was confirmed: one put on the wire since a `rate_limited` ends the one-at-a-time window. */
  confirmed(clientMsgId: string): void {
    if (this.probation && clientMsgId === this.probeId) {
      this.probation = false;
      this.probeId = undefined;
    }
  }

  /** What is left of the sends' wait (ms; 0: none), never more than it was when set (a clock stepped back). */
  wait(): number {
    return this.pause.left();
  }

  /** Another user signed in: the waits and windows kept for the last user's message budget are theirs. */
  reset(): void {
    this.pause.clear();
    this.probation = false;
    this.probeId = undefined;
    this.pacer.reset();
  }

  /**
   * Puts waiting sends on the wire, oldest first: at most `maxInFlightSends` unanswered (1 during
   * a probation after `rate_limited`), and only while the send budget's window has a slot (every
   * frame spends one, a resend too: the server counts it). Returns the ms until the next slot
   * frees when a send waits for one (0: none does).
   */
  flush(transmitText: (text: string) => boolean): number {
    const maxInFlight = this.probation ? 1 : this.maxInFlight();
    let inFlight = this.queue.inFlight;
    for (const p of this.queue.waiting()) {
      if (inFlight >= maxInFlight) return 0; // an answer pumps again
      const paced = this.pacer.wait();
      if (paced > 0) return paced;
      if (!transmitText(p.text)) return 0; // the socket is gone: the next one pumps
      this.pacer.spend();
      p.inFlight = true;
      if (this.probation) this.probeId = p.clientMsgId;
      inFlight++;
    }
    return 0;
  }
}
