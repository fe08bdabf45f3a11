/**
 * Liveness of an open connection (ping/pong timing): a browser cannot see WebSocket pings, so the
 * client sends `ping` after a quiet period and gives the connection up when nothing answers it.
 */
import type { TimerSlot } from './clock.js';
import type { RampartClientOptions } from './client-types.js';

/** What liveness checks need of the client. */
export interface LivenessContext {
  /** A socket is there and the client is `open` on it. */
  open(): boolean;
  /** What is left of the server's wait for dropped frames (ms; 0: none). */
  framesWait(): number;
  /** Sends a frame on the open socket; false when there is none. */
  transmit(frame: Record<string, unknown>): boolean;
  /** The ping went unanswered: the connection is given up (closed, handled as a drop). */
  dead(): void;
}

/**
 * Liveness of an open connection, decided by timers and a flag: a period of `pingIntervalMs` with
 * nothing received → `ping`; nothing received `pongTimeoutMs` after the ping → the connection is
 * dead: closed here (its close event may never come) and handled as a drop, so sends and acks
 * move to a new connection. A timer that fires late (a throttled background tab, a laptop waking
 * up) can only delay a verdict, never give up a connection that answered: it is given up only
 * when the ping it sent went unanswered. The one clock read, what is left of a server-requested
 * wait (`framesWait`), is capped at that wait, so a clock step cannot stretch it.
 */
export class Liveness {
  /** The current socket delivered a frame since the last liveness check: any frame proves it alive. */
  private heard = false;

  constructor(
    private readonly timer: TimerSlot,
    private readonly options: Pick<RampartClientOptions, 'pingIntervalMs' | 'pongTimeoutMs'>,
    private readonly ctx: LivenessContext,
  ) {}

  /** A frame arrived on the current socket. */
  frameArrived(): void {
    this.heard = true;
  }

  start(): void {
    this.heard = false;
    const interval = this.options.pingIntervalMs ?? 25_000;
    if (!(interval > 0) || !Number.isFinite(interval)) return; // off
    this.timer.start(interval, () => this.tick());
  }

  private tick(held = false): void {
    if (!this.ctx.open()) return;
    if (this.heard) return this.start();
    // During the server's wait a ping would only be refused (a strike towards 4029): it goes when
    // the wait ends, and the pong timeout starts then, with the ping on the wire — one the SDK held
    // back never counts against the connection. Held once only: a wait grows only with a refusal,
    // a frame, and a frame heard meanwhile starts a new period instead. So a dead connection is
    // found at most one wait later than without it.
    const wait = held ? 0 : this.ctx.framesWait();
    if (wait > 0) return this.timer.start(wait, () => this.tick(true));
    this.ctx.transmit({ type: 'ping' });
    const given = this.options.pongTimeoutMs ?? 10_000;
    const timeout = given > 0 && Number.isFinite(given) ? given : 10_000;
    this.timer.start(timeout, () => this.awaitPong(false));
  }

  private awaitPong(confirming: boolean): void {
    if (!this.ctx.open()) return;
    if (this.heard) return this.start();
    // One more turn first: a pong already received but not yet read (timers run before socket
    // reads in an event-loop turn) is handled before the verdict.
    if (!confirming) return this.timer.start(0, () => this.awaitPong(true));
    this.ctx.dead();
  }
}
