/**
 * Reconnect delays: exponential backoff with full jitter (a uniformly random delay between 0 and
 * the capped exponential), so clients that lost the same server do not come back in lockstep.
 */
export interface BackoffOptions {
  /** Ceiling of the first retry's delay (ms). */
  baseMs: number;
  /** No delay is ever longer than this (ms). */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 30_000 };

/** The ceiling for retry number `attempt` (0-based): min(maxMs, baseMs × 2^attempt). */
export function backoffCeiling(attempt: number, o: BackoffOptions): number {
  const exp = o.baseMs * 2 ** Math.min(Math.max(0, attempt), 30);
  return Math.min(o.maxMs, exp);
}

/** Full jitter: uniform in [0, ceiling). `random` returns [0, 1) like Math.random. */
export function backoffDelay(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeiling(attempt, o));
}
