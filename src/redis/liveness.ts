/**
 * Notices a Redis connection whose network path died silently — no FIN, no RST (a dead host, a NAT
 * or firewall that forgot the flow): the socket stays `ready` while nothing arrives, a subscriber
 * never hears of it (it only reads, so the kernel never retransmits), and commands pile up
 * unanswered until TCP keepalive gives up, hours later. A PING every `intervalMs` after which
 * nothing at all arrives from Redis within `timeoutMs` (its reply, or any other bytes: a
 * subscriber's messages count too), or which fails while the connection looks ready, drops the
 * connection; ioredis reconnects, and what its owner does after a reconnect (resubscribe,
 * resync, recheck bans) runs as after any outage.
 */
import type { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';

/** A deadline timer this much late means the event loop was busy: a reply may be waiting unread. */
const LATE_MS = 20;

export interface LivenessOptions {
  /** 0 turns the check off. */
  intervalMs: number;
  timeoutMs: number;
  /** The connection was found dead and is being dropped (for the log). */
  onDead?(): void;
}

export class RedisLiveness {
  readonly #timer: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;
  /** When the PING in flight was sent; 0 when none is. */
  #sentAt = 0;
  #stopped = false;
  /** Stops listening for the bytes of the probe in flight. */
  #unlisten: () => void = () => {};

  constructor(
    private readonly conn: Redis,
    private readonly o: LivenessOptions,
  ) {
    if (o.intervalMs > 0) {
      this.#timer = setInterval(() => this.#probe(), o.intervalMs);
      this.#timer.unref();
    }
  }

  /** False while a PING is overdue: the connection may look ready, but nothing comes back. */
  get alive(): boolean {
    return this.#sentAt === 0 || Date.now() - this.#sentAt <= this.o.timeoutMs;
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#deadline);
    this.#unlisten();
  }

  #probe(): void {
    if (this.#stopped || this.#sentAt !== 0 || this.conn.status !== 'ready') return;
    const sentAt = Date.now();
    this.#sentAt = sentAt;
    // Any bytes from Redis after the PING show the path alive, whether or not the PING's promise
    // settles (a client's commandTimeout may reject it first; a late reply then resolves nothing).
    const stream = (this.conn as unknown as { stream?: EventEmitter }).stream;
    const heard = (): void => this.#settle(sentAt, true);
    stream?.once('data', heard);
    this.#unlisten = () => stream?.off('data', heard);
    this.#arm(sentAt, this.o.timeoutMs);
    this.conn.ping().then(heard, (err: unknown) => {
      // A timeout of the client's own leaves the verdict to the deadline; another failure while
      // the connection looks ready is the death this is for.
      if (!/timed out/i.test(err instanceof Error ? err.message : '')) this.#settle(sentAt, false);
    });
  }

  /** The deadline; a timer that fires late (a busy event loop) is given as long again. */
  #arm(sentAt: number, ms: number): void {
    const due = Date.now() + ms;
    this.#deadline = setTimeout(() => {
      const late = Date.now() - due;
      if (late > LATE_MS) this.#arm(sentAt, late);
      else this.#settle(sentAt, false);
    }, ms);
    this.#deadline.unref();
  }

  #settle(sentAt: number, answered: boolean): void {
    if (this.#sentAt !== sentAt) return; // settled already (the deadline, or the reply after it)
    this.#sentAt = 0;
    clearTimeout(this.#deadline);
    this.#unlisten();
    // A failure while the connection looks ready is the silent death this is for; a failure because
    // it is reconnecting anyway needs nothing more.
    if (answered || this.#stopped || this.conn.status !== 'ready') return;
    this.o.onDead?.();
    this.conn.disconnect(true);
  }
}

/** The liveness options from the config keys `redisPingIntervalMs` and `redisPingTimeoutMs`. */
export function redisPing(config: { redisPingIntervalMs: number; redisPingTimeoutMs: number }): { intervalMs: number; timeoutMs: number } {
  return { intervalMs: config.redisPingIntervalMs, timeoutMs: config.redisPingTimeoutMs };
}

/** The defaults of `redisPingIntervalMs` and `redisPingTimeoutMs`. */
export const DEFAULT_PING = { intervalMs: 1000, timeoutMs: 3000 } as const;

/** A liveness check on `conn` that reports a silent connection, named by `role`, before dropping it. */
export function watchLiveness(conn: Redis, role: string, ping: { intervalMs: number; timeoutMs: number } | undefined, report: (err: Error) => void): RedisLiveness {
  const p = ping ?? DEFAULT_PING;
  return new RedisLiveness(conn, { ...p, onDead: () => report(new Error(`Redis ${role} connection silent for ${p.timeoutMs} ms; reconnecting`)) });
}
