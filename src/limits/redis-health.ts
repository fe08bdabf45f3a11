/**
 * What the limits do when Redis is unreachable.
 *
 * - New connections fail CLOSED: `acquireIp` / `acquireUser` throw `BackendUnavailableError`
 *   (never `false`, which means "limit reached" → 429). The server answers HTTP 503 and keeps the
 *   sockets it already has: without the shared count it cannot know the cluster-wide total.
 * - Existing sessions fail OPEN to per-node limits: `consume` uses a local `MemoryLimiter` while
 *   Redis is down, so chat continues with each node enforcing the rules on its own, and switches
 *   back by itself once the client is `ready` again (no timer: every call looks at the status).
 * - `release*` never throws; the Redis registry reconciles missed releases on its next heartbeat.
 *
 * The client is configured to fail fast (see `FAIL_FAST_REDIS_OPTIONS`), so "down" is noticed in
 * one round trip at most, never by commands piling up in a queue.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { ConnectionRegistry, Limiter, RateDecision, RateRule } from './limiter.js';
import type { MemoryLimiter } from './memory-limiter.js';

/** The shared backend cannot answer; the caller should refuse new work (HTTP 503), not retry. */
export class BackendUnavailableError extends Error {
  override readonly name = 'BackendUnavailableError';
  readonly code = 'backend_unavailable';
  constructor(message = 'limits backend unavailable', options?: { cause?: unknown }) {
    super(message, options);
  }
}

export type BackendErrorHandler = (err: unknown, op: string) => void;

/**
 * ioredis defaults queue commands while disconnected and retry them 20 times — a frame could wait
 * for minutes. These settings make every command either answer or fail within ~2 s.
 */
export const FAIL_FAST_REDIS_OPTIONS: RedisOptions = {
  // A command issued while disconnected is rejected at once instead of queued.
  enableOfflineQueue: false,
  // An in-flight command is retried across at most one reconnect, then rejected.
  maxRetriesPerRequest: 1,
  // A dead address is given up on (and retried in the background) after 2 s.
  connectTimeout: 2000,
  // A server that accepts but never answers cannot stall a caller longer than this.
  commandTimeout: 2000,
  // disconnect() waits this long for a graceful socket end, even when the socket is already gone
  // (Redis unreachable): short, so a node shutting down exits promptly.
  disconnectTimeout: 200,
  // Keep reconnecting forever, backing off to 2 s: recovery needs no operator.
  retryStrategy: (times: number) => Math.min(100 * times, 2000),
};

/**
 * A client with the fail-fast settings; `error` events go to `onError` (ioredis would print them).
 * Only the first error of each outage is reported (until the client is `ready` again), as the bus
 * does: ioredis retries, and errors, every couple of seconds for as long as Redis is away.
 */
export function createRedisClient(url: string, overrides: RedisOptions = {}, onError?: BackendErrorHandler): Redis {
  const client = new Redis(url, { ...FAIL_FAST_REDIS_OPTIONS, ...overrides });
  let down = false;
  client.on('error', (err: unknown) => {
    if (down) return;
    down = true;
    onError?.(err, 'connection');
  });
  client.on('ready', () => {
    down = false;
  });
  return client;
}

/** True when the client can run a command now. */
export function isReady(client: Redis): boolean {
  return client.status === 'ready';
}

/** Redis limiter with a per-node memory fallback for while Redis is unreachable (fail open). */
export class FailoverLimiter implements Limiter {
  constructor(
    private readonly primary: Limiter,
    private readonly fallback: MemoryLimiter,
    private readonly isUp: () => boolean,
    private readonly onError?: BackendErrorHandler,
  ) {}

  async consume(key: string, rules: readonly RateRule[], now?: number): Promise<RateDecision> {
    if (this.isUp()) {
      try {
        return await this.primary.consume(key, rules, now);
      } catch (err) {
        this.onError?.(err, 'consume');
      }
    }
    return this.fallback.consume(key, rules, now);
  }

  /** Recorded locally too, so a penalty keeps holding on this node through an outage. */
  async block(key: string, ms: number, now?: number): Promise<void> {
    this.fallback.block(key, ms, now);
    if (!this.isUp()) return;
    try {
      await this.primary.block(key, ms, now);
    } catch (err) {
      this.onError?.(err, 'block');
    }
  }

  async blockedFor(key: string, now?: number): Promise<number> {
    const local = this.fallback.blockedFor(key, now);
    if (!this.isUp()) return local;
    try {
      return Math.max(local, await this.primary.blockedFor(key, now));
    } catch (err) {
      this.onError?.(err, 'blockedFor');
      return local;
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.primary.close(), this.fallback.close()]);
  }
}

/** Redis registry that refuses (throws `BackendUnavailableError`) instead of guessing (fail closed). */
export class FailClosedRegistry implements ConnectionRegistry {
  constructor(
    private readonly inner: ConnectionRegistry,
    private readonly isUp: () => boolean,
    private readonly onError?: BackendErrorHandler,
  ) {}

  acquireIp(ip: string, max: number): Promise<boolean> {
    return this.guard('acquireIp', () => this.inner.acquireIp(ip, max));
  }

  acquireUser(userId: string, max: number): Promise<boolean> {
    return this.guard('acquireUser', () => this.inner.acquireUser(userId, max));
  }

  countIp(ip: string): Promise<number> {
    return this.guard('countIp', () => this.inner.countIp(ip));
  }

  countUser(userId: string): Promise<number> {
    return this.guard('countUser', () => this.inner.countUser(userId));
  }

  async releaseIp(ip: string): Promise<void> {
    try {
      await this.inner.releaseIp(ip);
    } catch (err) {
      this.onError?.(err, 'releaseIp');
    }
  }

  async releaseUser(userId: string): Promise<void> {
    try {
      await this.inner.releaseUser(userId);
    } catch (err) {
      this.onError?.(err, 'releaseUser');
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async guard<T>(op: string, run: () => T | Promise<T>): Promise<T> {
    if (!this.isUp()) throw new BackendUnavailableError(`limits backend unavailable (${op})`);
    try {
      return await run();
    } catch (err) {
      this.onError?.(err, op);
      if (err instanceof BackendUnavailableError) throw err;
      throw new BackendUnavailableError(`limits backend failed (${op})`, { cause: err });
    }
  }
}
