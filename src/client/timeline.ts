/**
 * The incoming timeline stream: every event (`chat_message`, `membership`, edits, deletes, our own
 * sends' confirmations with `pos`, pruned holes) checked against the position, so each reaches the
 * application exactly once, in `pos` order; duplicates are dropped and a gap resumes the stream.
 */
import type { AckSchedule } from './ack-schedule.js';
import type { Frame } from './client-types.js';
import type { Emitter } from './emitter.js';
import type { ClientEvents } from './events.js';
import { OwnMessages, PosTracker } from './pos-tracker.js';

/** What the stream needs of the client. */
export interface TimelineContext {
  events: Emitter<ClientEvents>;
  acks: AckSchedule;
  /** The current socket is being replaced after a gap: its events are not handed over any more. */
  resuming(): boolean;
  /** The stream skipped a position: resume from `after`, the last one we have (on a fresh socket). */
  gap(after: number, got: number): void;
  /** The signed-in user (a message from them is our own). */
  user(): string | undefined;
  /** Sends are waiting for their confirmation. */
  sendsPending(): boolean;
}

export class Timeline {
  private tracker = new PosTracker();
  /** Which own messages were handed over (as `sent` or as a copy), so none is handed over twice. */
  private readonly ownMessages = new OwnMessages();

  constructor(private readonly ctx: TimelineContext) {}

  /** The last timeline position the application processed. */
  get pos(): number {
    return this.tracker.pos;
  }

  /** The stored position, read at start. */
  restore(pos: number): void {
    this.tracker = new PosTracker(pos);
  }

  /** The position follows the server's (`auth_success`'s `resumeAfter`). */
  reset(resumeAfter: number): void {
    this.tracker.reset(resumeAfter);
  }

  /** Checks `pos`: true when the event is the next one; handles duplicates and gaps. */
  private admit(pos: number): boolean {
    this.ctx.acks.reached(pos);
    const verdict = this.tracker.check(pos);
    if (verdict === 'deliver') return true;
    // A replay of what we had (the server resumed at what this device acknowledged): it may be
    // acknowledged now, up to here.
    if (verdict === 'duplicate') {
      this.ctx.acks.replayed();
      return false;
    }
    if (verdict === 'gap' && !this.ctx.resuming()) this.ctx.gap(this.tracker.pos, pos);
    return false;
  }

  /** A `chat_message`, `membership`, `message_edited` or `message_deleted`. */
  event(f: Frame): void {
    const pos = Number(f.pos);
    if (!Number.isSafeInteger(pos) || this.ctx.resuming() || !this.admit(pos)) return;
    // The position moves before the event is handed over: a listener that closes the client saves
    // and acknowledges it with this event (not handed over again after a restart), and nothing
    // runs between the two that could save it without.
    this.tracker.advance(pos);
    const events = this.ctx.events;
    if (f.type === 'chat_message') {
      const { type: _type, ...message } = f;
      const own = f.senderId === this.ctx.user();
      // Our own message may already have reached the application as `sent` (its confirmation
      // after a resend arrived before the replayed copy).
      if (!own || this.ownMessages.copy(String(f.id), this.ctx.sendsPending())) events.emit('message', { ...(message as unknown as ClientEvents['message']), pos, own });
    } else {
      const { type: _type, ...event } = f;
      if (f.type === 'membership') events.emit('membership', { ...(event as unknown as ClientEvents['membership']), pos });
      else if (f.type === 'message_edited') events.emit('edited', { ...(event as unknown as ClientEvents['edited']), pos });
      else events.emit('deleted', { ...(event as unknown as ClientEvents['deleted']), pos });
    }
    this.ctx.acks.processed();
  }

  /** `timeline_pruned`: the server no longer has the events from `after` + 1 to `firstPos` − 1. */
  pruned(f: Frame): void {
    const after = Number(f.after);
    const firstPos = Number(f.firstPos);
    if (this.ctx.resuming() || !Number.isSafeInteger(firstPos)) return; // this socket is being replaced
    // `after` past our position: we missed events before the hole — resume, as for any gap.
    if (after > this.tracker.pos) {
      this.admit(after + 1);
      return;
    }
    const acks = this.ctx.acks;
    // The server counts the skipped positions as sent on this socket: they may be acknowledged
    // (else the same hole would come back at every reconnect).
    acks.reached(firstPos - 1);
    if (firstPos - 1 <= this.tracker.pos) return acks.processed(); // all of it at or below our position: nothing skipped
    this.tracker.skipTo(firstPos);
    this.ctx.events.emit('pruned', { after, firstPos });
    acks.processed();
  }

  /**
   * A confirmation with `pos` takes the place of our own copy in the stream: it is that position's
   * event, handed over only as the next one. Not while a gap is being resumed (this socket's
   * events are not handed over any more): the replay brings its copy again, in order, as a `message`.
   * The position moves either way, but the message is handed over only if it was not already: a
   * send repeated after a dropped frame may have been confirmed first by its repeat's answer
   * (without `pos`, at once), the original's answer coming later in its place.
   */
  placeSent(id: string, pos: number): boolean {
    if (this.ctx.resuming() || !this.admit(pos)) return false;
    this.tracker.advance(pos);
    return this.ownMessages.placed(id);
  }

  /** A confirmation without `pos` (a repeat the server had stored): true when it is to be handed over. */
  confirmedWithoutPos(id: string): boolean {
    return this.ownMessages.confirmedWithoutPos(id);
  }
}
