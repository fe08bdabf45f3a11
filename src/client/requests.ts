/**
 * Request/reply over the socket by `requestId` (history, conversation lists, group changes, read
 * receipts). A request waits for the socket if it is not open; one in flight when the socket
 * drops is rejected (a group change may or may not have happened — the timeline will tell).
 *
 * Some refusals name no frame: the connection's frame budget (`rate_limited frame_limit`) and a
 * failed limiter (`error internal_error`) are decided before the frame is read, so they carry no
 * `requestId`, and any request on the wire may be the one the server dropped. Such a request is
 * never left to run into the timeout (`maybeDropped`):
 * - a read (`history`, `list_conversations`, `presence`, `list_sessions`) and `read` (its position
 *   never moves backwards) are repeatable — asking again, or late, changes nothing — so they go
 *   out again once the server's wait is over, under the same `requestId`; if the first one was
 *   answered after all, the repeat's answer finds nothing waiting and is dropped;
 * - a `create_group` under its key (`clientMsgId`) is too: the server answers a repeat with the
 *   group the first one made; it also goes out again after a dropped connection, and after the
 *   group-create limit refused it (`rate_limited`: a repeat of a create whose answer was lost is
 *   counted like a new one) once the wait is over, if that fits before its timeout — rejected
 *   instead, the app could only try again under a new key, and make a second group;
 * - another change (member changes, `rename_group`, `set_role`, `set_presence`, `end_session`) is
 *   not: a repeat could undo a later change made in between. It keeps waiting for its answer (it may have been accepted: its answer comes once the
 *   server did the work), but only for `UNCONFIRMED_AFTER_MS` (or the server's wait, if longer);
 *   then it fails with `unconfirmed`: it may or may not have happened, as after a drop.
 */
import { detailOf } from './refusals.js';
import type { Clock, TimerHandle } from './clock.js';
import { spendsRequestBudget, type RequestPacer } from './request-pacing.js';

export class RequestError extends Error {
  constructor(
    /**
     * The server's error reason; or `rate_limited` (see `retryAfter`), `timeout`, `disconnected`,
     * `closed`; `unconfirmed` (a change the server may have dropped unread, see above: look before
     * repeating it); `validation_failed` found before sending (see `detail`; nothing was sent).
     */
    readonly reason: string,
    /** Set for `rate_limited`: when the request may be tried again (ms). */
    readonly retryAfter?: number,
    /** For `validation_failed` (found before sending, or the server's `details`): which field, and the rule (never its value). */
    readonly detail?: string,
    /**
     * Set for `createGroup`: the key it went under. The group may exist all the same (an answer
     * lost, a repeat refused): call `createGroup` again with this `clientMsgId`, never a new one.
     */
    readonly clientMsgId?: string,
  ) {
    super(`request failed: ${reason}${detail === undefined ? '' : ` (${detail})`}`);
    this.name = 'RequestError';
  }
}

/**
 * How long a change the server may have dropped unread still waits for its answer (ms). An
 * accepted change is answered once storage did the work — milliseconds, seldom a second — so an
 * answer this late means the frame was most likely the one dropped.
 */
export const UNCONFIRMED_AFTER_MS = 2000;

/** Requests that can be sent twice, or late, without changing anything (see the module comment). */
const REPEATABLE: ReadonlySet<unknown> = new Set(['history', 'list_conversations', 'presence', 'list_sessions', 'read']);

/** A create under its key: the server answers a repeat with the group the first one made. */
const isKeyedCreate = (frame: Readonly<Record<string, unknown>>): boolean => frame.type === 'create_group' && typeof frame.clientMsgId === 'string';

const isRepeatable = (frame: Readonly<Record<string, unknown>>): boolean => REPEATABLE.has(frame.type) || isKeyedCreate(frame);

interface PendingRequest {
  frame: Record<string, unknown>;
  sent: boolean;
  /** When it fails with `timeout` (clock ms): `maybeDropped` never moves this later. */
  deadline: number;
  timer: TimerHandle;
  /** A keyed create refused by the group-create limit waits for this timer before it goes again. */
  held?: TimerHandle;
  resolve(reply: Record<string, unknown>): void;
  reject(err: RequestError): void;
}

/** Default of `Requests`' `maxInFlight` (the client's `maxInFlightRequests`): a quarter of the server's default bound. */
export const DEFAULT_MAX_IN_FLIGHT_REQUESTS = 8;

/** The requests the server answers in order and holds at most `limits.maxQueuedFrames` of (frame-pipeline.ts `request`). */
const BOUNDED: ReadonlySet<unknown> = new Set(['history', 'list_conversations', 'read', 'presence', 'set_presence']);

export class Requests {
  private readonly pending = new Map<string, PendingRequest>();
  private counter = 0;

  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
    /** Called when a held request may go out (the owner flushes). */
    private readonly wake: () => void = () => {},
    /**
     * Reads, `read` and presence requests on the wire at once, unanswered. The server answers at
     * most `limits.maxQueuedFrames` (32) of them per connection at a time: past that, every later
     * frame of the connection waits in its queue, and past 32 more the connection is closed 4029.
     * On slow storage, requests paced under the budget could pile up that far. Group changes and
     * session requests are not bounded there, and not held here.
     */
    maxInFlight = DEFAULT_MAX_IN_FLIGHT_REQUESTS,
  ) {
    // An ill-formed bound (0, NaN) would hold every request until it times out.
    this.maxInFlight = Number.isFinite(maxInFlight) && maxInFlight >= 1 ? Math.floor(maxInFlight) : DEFAULT_MAX_IN_FLIGHT_REQUESTS;
  }

  private readonly maxInFlight: number;

  get size(): number {
    return this.pending.size;
  }

  /** Registers a request; `flush` puts it on the wire once the socket is open. */
  add(frame: Record<string, unknown>): Promise<Record<string, unknown>> {
    const requestId = `r${(++this.counter).toString(36)}`;
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => this.settle(requestId, new RequestError('timeout')), this.timeoutMs);
      const deadline = this.clock.now() + this.timeoutMs;
      this.pending.set(requestId, { frame: { ...frame, requestId }, sent: false, deadline, timer, resolve, reject });
    });
  }

  /**
   * Sends every request not on the wire yet (but those held for a rate limit's wait). Those that
   * spend the server's request budget go only while `pacer` has room, in the order they were made;
   * the rest wait (their timeout still runs). Returns the ms until the next of them may go (0:
   * none waits), for the caller's timer. Group changes spend budgets of their own: never paced here.
   */
  flush(transmit: (frame: Record<string, unknown>) => boolean, pacer?: RequestPacer): number {
    let paceWait = 0;
    let onWire = 0;
    for (const p of this.pending.values()) if (p.sent && BOUNDED.has(p.frame.type)) onWire++;
    for (const p of this.pending.values()) {
      if (p.sent || p.held !== undefined) continue;
      const bounded = BOUNDED.has(p.frame.type);
      if (bounded && onWire >= this.maxInFlight) continue; // an answer flushes again (settle); the others may go
      const paced = pacer !== undefined && spendsRequestBudget(p.frame.type);
      if (paced) {
        if (paceWait > 0) continue; // behind one that waits: keeps its place
        paceWait = pacer.wait();
        if (paceWait > 0) continue;
      }
      if (!transmit(p.frame)) return 0; // the socket is gone: the next one flushes
      p.sent = true;
      if (bounded) onWire++;
      if (paced) pacer.spend();
    }
    return paceWait;
  }

  /** A reply or error carrying `requestId`; true when it answered one of ours. */
  answer(frame: Record<string, unknown>): boolean {
    const id = frame.requestId;
    if (typeof id !== 'string') return false;
    const p = this.pending.get(id);
    if (!p) return false;
    if (frame.type === 'error') this.settle(id, new RequestError(String(frame.reason), undefined, detailOf(frame.details)));
    else if (frame.type === 'rate_limited') this.rateLimited(id, p, Number(frame.retryAfter));
    else this.settle(id, frame);
    return true;
  }

  /**
   * `rate_limited` naming a request: a repeatable one — a read, `read`, a keyed create — goes out
   * again after the wait, if that is before its timeout (requests paced under the budget can still
   * arrive bunched, after a stall on the way; a keyed create's group may exist: a repeat after a
   * lost answer counts against the limit like a new create); anything else fails with
   * `rate_limited` and the wait.
   */
  private rateLimited(id: string, p: PendingRequest, retryAfter: number): void {
    const wait = Number.isFinite(retryAfter) ? Math.max(0, retryAfter) : undefined;
    if (!isRepeatable(p.frame) || wait === undefined || this.clock.now() + wait >= p.deadline) {
      this.settle(id, new RequestError('rate_limited', retryAfter));
      return;
    }
    p.sent = false;
    if (BOUNDED.has(p.frame.type)) this.placeFreed(); // held, it is not on the wire
    // Both copies on the wire (a repeat after a dropped frame) may be refused: the later wait holds.
    if (p.held !== undefined) this.clock.clearTimeout(p.held);
    p.held = this.clock.setTimeout(() => {
      p.held = undefined;
      this.wake();
    }, wait);
  }

  /**
   * The server dropped a frame without naming it; `waitMs` is how long it asked us to wait. The
   * caller holds `flush` back until then. Repeatable requests on the wire go out again with the
   * next flush; changes fail with `unconfirmed` unless answered within max(`waitMs`, `UNCONFIRMED_AFTER_MS`).
   */
  maybeDropped(waitMs: number): void {
    const now = this.clock.now();
    for (const [id, p] of this.pending) {
      if (!p.sent) continue;
      if (isRepeatable(p.frame)) {
        p.sent = false;
        continue;
      }
      const at = Math.min(p.deadline, now + Math.max(waitMs, UNCONFIRMED_AFTER_MS));
      this.clock.clearTimeout(p.timer);
      p.timer = this.clock.setTimeout(() => this.settle(id, at < p.deadline ? new RequestError('unconfirmed') : new RequestError('timeout')), at - now);
    }
  }

  /**
   * The socket dropped: requests already sent are failed (not replayed blindly), but for a keyed
   * create, which goes out again on the next socket (its repeat is answered with the first's
   * group). A repeatable one waiting to go out again (`maybeDropped`) is not on the wire: it goes
   * out on the next socket.
   */
  disconnected(): void {
    for (const [id, p] of this.pending) {
      if (!p.sent) continue;
      if (isKeyedCreate(p.frame)) p.sent = false;
      else this.settle(id, new RequestError('disconnected'));
    }
  }

  rejectAll(reason: string): void {
    for (const id of [...this.pending.keys()]) this.settle(id, new RequestError(reason));
  }

  /** A bounded request left the wire: flush once the caller's frame is handled (not in the middle of an answer). */
  private placeFreed(): void {
    if (this.pending.size > 0) queueMicrotask(this.wake);
  }

  private settle(id: string, outcome: Record<string, unknown> | RequestError): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.clock.clearTimeout(p.timer);
    if (p.held !== undefined) this.clock.clearTimeout(p.held);
    if (outcome instanceof RequestError) p.reject(outcome);
    else p.resolve(outcome);
    // A place on the wire freed: one waiting for it may go.
    if (p.sent && BOUNDED.has(p.frame.type)) this.placeFreed();
  }
}
