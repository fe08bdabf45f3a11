/**
 * Notices a Redis connection whose network path died silently — no FIN, no RST (a dead host, a NAT
 * or firewall that forgot the flow): the socket stays `ready` while nothing arrives, a subscriber
 * never hears of it (it only reads, so the kernel never retransmits), and commands pile up
 * unanswered until TCP keepalive gives up, hours later. A PING every `intervalMs` that gets no
 * reply within `timeoutMs`, or fails while the connection looks ready, drops the connection;
 * ioredis reconnects, and what its owner does after a reconnect (resubscribe, resync, recheck
 * bans) runs as after any outage.
 */
import type { Redis } from 'ioredis';

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
    clearInterval(this.#timer);
    clearTimeout(this.#deadline);
  }

  #probe(): void {
    if (this.#sentAt !== 0 || this.conn.status !== 'ready') return;
    const sentAt = Date.now();
    this.#sentAt = sentAt;
    this.#deadline = setTimeout(() => this.#settle(sentAt, false), this.o.timeoutMs);
    this.#deadline.unref();
    this.conn.ping().then(
      () => this.#settle(sentAt, true),
      () => this.#settle(sentAt, false),
    );
  }

  #settle(sentAt: number, answered: boolean): void {
    if (this.#sentAt !== sentAt) return; // settled already (the deadline, or the reply after it)
    this.#sentAt = 0;
    clearTimeout(this.#deadline);
    // A failure while the connection looks ready is the silent death this is for; a failure because
    // it is reconnecting anyway needs nothing more.
    if (answered || this.conn.status !== 'ready') return;
    this.o.onDead?.();
    this.conn.disconnect(true);
  }
}

/** The liveness options from the config keys `redisPingIntervalMs` and `redisPingTimeoutMs`. */
export function redisPing(config: { redisPingIntervalMs: number; redisPingTimeoutMs: number }): { intervalMs: number; timeoutMs: number } {
  return { intervalMs: config.redisPingIntervalMs, timeoutMs: config.redisPingTimeoutMs };
}
