/**
 * The server's answers to what the client sent: confirmations of sends and changes, and
 * refusals. A refusal that names a send either settles it or, when the server is busy
 * (`rate_limited`, `storage_unavailable`), holds the sends and tries it again; one that names a
 * request goes to the request (a rate-limited read asks again). One that names no frame: see
 * `unnamedRefusal`.
 */
import { ErrorReason } from '../protocol/reasons.js';
import type { AckSchedule } from './ack-schedule.js';
import { backoffDelay, type BackoffOptions } from './backoff.js';
import type { Frame } from './client-types.js';
import type { Emitter } from './emitter.js';
import type { ClientEvents, SentEvent } from './events.js';
import type { SendGate, ServerWait } from './flow-control.js';
import { detailOf } from './refusals.js';
import type { Requests } from './requests.js';
import type { SendQueue } from './send-queue.js';
import type { Timeline } from './timeline.js';
import type { TokenRefresher } from './token-refresh.js';

/** The parts of the client an answer reaches. */
export interface AnswerContext {
  events: Emitter<ClientEvents>;
  queue: SendQueue;
  sends: SendGate;
  requests: Requests;
  acks: AckSchedule;
  timeline: Timeline;
  refresher: TokenRefresher;
  /** The server's wait for dropped frames (see `framesDropped`). */
  framesPause: ServerWait;
  backoff: BackoffOptions;
  random: () => number;
  /** Puts what waits on the wire (after the waits). */
  pump(): void;
}

export class ServerAnswers {
  constructor(private readonly ctx: AnswerContext) {}

  /** `message_sent`: a send confirmed (with `pos`: its place in the timeline). */
  sent(f: Frame): void {
    const sent: SentEvent = {
      id: String(f.id),
      conversationId: String(f.conversationId),
      seq: Number(f.seq),
      timestamp: Number(f.timestamp),
      ...(typeof f.clientMsgId === 'string' ? { clientMsgId: f.clientMsgId } : {}),
      ...(typeof f.pos === 'number' ? { pos: f.pos } : {}),
    };
    // Confirmed before the event: a listener that closes the client must not reject this very send.
    const confirmed = sent.clientMsgId !== undefined && this.ctx.queue.confirm({ id: sent.id, clientMsgId: sent.clientMsgId, conversationId: sent.conversationId, seq: sent.seq, timestamp: sent.timestamp });
    // Without `pos` (a repeat the server had stored): handed over once, for the send it confirms
    // (a second answer to one send confirms nothing), unless its copy was handed over already.
    if (confirmed) this.ctx.sends.confirmed(sent.clientMsgId!);
    const emit = sent.pos === undefined ? confirmed && this.ctx.timeline.confirmedWithoutPos(sent.id) : this.ctx.timeline.placeSent(sent.id, sent.pos);
    if (emit) this.ctx.events.emit('sent', sent);
    if (sent.pos !== undefined) this.ctx.acks.processed();
    this.ctx.pump();
  }

  /** The answer to an edit or delete: confirms the queued change (a repeat finds nothing queued). */
  changed(f: Frame): void {
    const clientMsgId = typeof f.clientMsgId === 'string' ? f.clientMsgId : undefined;
    const confirmed =
      clientMsgId !== undefined &&
      this.ctx.queue.confirm({
        action: f.action === 'deleted' ? 'deleted' : 'edited',
        messageId: String(f.messageId),
        clientMsgId,
        conversationId: String(f.conversationId),
        ...(typeof f.seq === 'number' ? { seq: f.seq } : {}),
      });
    if (confirmed) {
      this.ctx.sends.confirmed(clientMsgId);
      this.ctx.pump();
    } else this.ctx.requests.answer(f);
  }

  /** `error` or `rate_limited`: to the send or request it names (settled, or held and tried again; see the module comment), else `unnamedRefusal`. */
  refusal(f: Frame): void {
    const clientMsgId = typeof f.clientMsgId === 'string' ? f.clientMsgId : undefined;
    if (clientMsgId !== undefined && this.ctx.queue.has(clientMsgId)) {
      if (f.type === 'rate_limited') {
        this.ctx.queue.rateLimited(clientMsgId);
        this.ctx.sends.rateLimited(Math.max(0, Number(f.retryAfter) || 0));
      } else if (this.ctx.queue.failed(clientMsgId, String(f.reason), detailOf(f.details))) {
        this.ctx.sends.hold(this.retryDelay());
      }
      this.ctx.pump();
      return;
    }
    if (this.ctx.requests.answer(f)) return;
    if (clientMsgId === undefined && f.requestId === undefined) this.unnamedRefusal(f);
    this.ctx.events.emit('error', { reason: String(f.reason), ...(f.details !== undefined ? { details: f.details } : {}) });
  }

  /**
   * A refusal that names no frame. The frame budget (`rate_limited frame_limit`; also the user's
   * request budget refusing an `ack`, which carries no `requestId`) and a failed limiter or handler
   * (`error internal_error`) dropped one of our frames unread, we cannot tell which: everything
   * that may have been it goes again after the wait (`framesDropped`). `error storage_unavailable`
   * without ids answers an `ack` (or a typing indicator, or the server's own replay): the ack is
   * sent again. A `validation_failed` is not retried: it would be refused again, and the SDK checks
   * what it sends against the same bounds first (outgoing-checks.ts).
   */
  private unnamedRefusal(f: Frame): void {
    if (f.type === 'rate_limited') this.framesDropped(Math.max(0, Number(f.retryAfter) || 0));
    else if (f.reason === ErrorReason.INTERNAL) this.framesDropped(this.retryDelay());
    else if (f.reason === ErrorReason.STORAGE_UNAVAILABLE) this.ctx.acks.again(this.retryDelay());
  }

  /**
   * The server dropped one of our frames unread and wants `wait` ms before the next. Nothing goes
   * out until then; after it: sends in flight go again (their `clientMsgId` makes a repeat
   * harmless), repeatable requests are asked again and changes fail with `unconfirmed` unless
   * answered (requests.ts), the latest ack is sent again (cumulative, so always safe), and an
   * unanswered token refresh is made again (else the session would end at the old token's `exp`).
   */
  private framesDropped(wait: number): void {
    this.ctx.framesPause.extend(wait);
    this.ctx.queue.resendInFlight();
    this.ctx.requests.maybeDropped(wait);
    this.ctx.acks.again(wait);
    this.ctx.refresher.dropped(wait);
    this.ctx.pump();
  }

  /** A server-side failure's retry delay (no `retryAfter` given): jittered, about one backoff base. */
  private retryDelay(): number {
    return backoffDelay(1, this.ctx.backoff, this.ctx.random) + this.ctx.backoff.baseMs;
  }
}
