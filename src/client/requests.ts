/**
 * Request/reply over the socket by `requestId` (history, conversation lists, group changes, read
 * receipts). A request waits for the socket if it is not open; one in flight when the socket
 * drops is rejected (a group change may or may not have happened — the timeline will tell).
 */
import type { Clock, TimerHandle } from './clock.js';

export class RequestError extends Error {
  constructor(
    readonly reason: string,
    /** Set for `rate_limited`: when the request may be tried again (ms). */
    readonly retryAfter?: number,
  ) {
    super(`request failed: ${reason}`);
    this.name = 'RequestError';
  }
}

interface PendingRequest {
  frame: Record<string, unknown>;
  sent: boolean;
  timer: TimerHandle;
  resolve(reply: Record<string, unknown>): void;
  reject(err: RequestError): void;
}

export class Requests {
  private readonly pending = new Map<string, PendingRequest>();
  private counter = 0;

  constructor(
    private readonly clock: Clock,
    private readonly timeoutMs: number,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /** Registers a request; `flush` puts it on the wire once the socket is open. */
  add(frame: Record<string, unknown>): Promise<Record<string, unknown>> {
    const requestId = `r${(++this.counter).toString(36)}`;
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => this.settle(requestId, new RequestError('timeout')), this.timeoutMs);
      this.pending.set(requestId, { frame: { ...frame, requestId }, sent: false, timer, resolve, reject });
    });
  }

  /** Sends every request not on the wire yet. */
  flush(transmit: (frame: Record<string, unknown>) => boolean): void {
    for (const p of this.pending.values()) if (!p.sent && transmit(p.frame)) p.sent = true;
  }

  /** A reply or error carrying `requestId`; true when it answered one of ours. */
  answer(frame: Record<string, unknown>): boolean {
    const id = frame.requestId;
    if (typeof id !== 'string') return false;
    const p = this.pending.get(id);
    if (!p) return false;
    if (frame.type === 'error') this.settle(id, new RequestError(String(frame.reason)));
    else if (frame.type === 'rate_limited') this.settle(id, new RequestError('rate_limited', Number(frame.retryAfter)));
    else this.settle(id, frame);
    return true;
  }

  /** The socket dropped: requests already sent are failed (not replayed blindly). */
  disconnected(): void {
    for (const [id, p] of this.pending) if (p.sent) this.settle(id, new RequestError('disconnected'));
  }

  rejectAll(reason: string): void {
    for (const id of [...this.pending.keys()]) this.settle(id, new RequestError(reason));
  }

  private settle(id: string, outcome: Record<string, unknown> | RequestError): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.clock.clearTimeout(p.timer);
    if (outcome instanceof RequestError) p.reject(outcome);
    else p.resolve(outcome);
  }
}
