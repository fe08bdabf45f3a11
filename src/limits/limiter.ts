/**
 * The `Limiter` port: sliding-window rate limits that never admit more than `limit` events in
 * any interval of `windowMs` (no 2× burst at a fixed-window edge). Memory and Redis adapters.
 */
export interface RateRule {
  /** Stable name, part of the storage key (e.g. "burst", "minute"). */
  name: string;
  limit: number;
  windowMs: number;
}

export type RateDecision =
  | { allowed: true }
  /** `retryAfter`: ms until an event under the same key would pass this rule. */
  | { allowed: false; rule: string; retryAfter: number };

export interface Limiter {
  /**
   * Count one event under `key` against every rule, atomically: either all rules admit it and it
   * is counted in all, or it is counted in none and the first failing rule is returned.
   * The memory adapter answers synchronously; the Redis adapter returns a promise.
   */
  consume(key: string, rules: readonly RateRule[], now?: number): RateDecision | Promise<RateDecision>;
  /** Penalty box: block `key` for `ms`. */
  block(key: string, ms: number, now?: number): void | Promise<void>;
  /** Remaining block in ms (0 when not blocked). */
  blockedFor(key: string, now?: number): number | Promise<number>;
  close(): Promise<void>;
}

/**
 * The connection registry port: counts of live sockets per IP and sessions per user, across the
 * cluster when backed by Redis. Every `acquire` that returned true is paired with exactly one
 * `release` on every close path.
 */
export interface ConnectionRegistry {
  /** Reserve a concurrent-connection slot for `ip`; false when `max` are in use. */
  acquireIp(ip: string, max: number): boolean | Promise<boolean>;
  releaseIp(ip: string): void | Promise<void>;
  /** Reserve a session slot for `userId`; false when `max` are in use. */
  acquireUser(userId: string, max: number): boolean | Promise<boolean>;
  releaseUser(userId: string): void | Promise<void>;
  /** Current counts (tests and metrics). */
  countIp(ip: string): number | Promise<number>;
  countUser(userId: string): number | Promise<number>;
  close(): Promise<void>;
}
