/**
 * Bucketed sliding window: the pure algorithm behind both limiters (the Redis Lua script is a
 * line-by-line port of `retryAfter`, so Memory and Redis decide identically).
 *
 * Time is integer milliseconds (fractions are floored). The window at time `t` is the half-open
 * interval (t − windowMs, t]. It is split into buckets of `width = ceil(windowMs / buckets)` ms,
 * aligned to absolute time: bucket k covers [k·width, (k+1)·width). An event at `t` is admitted
 * only if the sum of every bucket that overlaps the window is < limit.
 *
 * Why this is conservative: every event already admitted inside (t − windowMs, t] lies in a bucket
 * that overlaps the window, so the sum is ≥ the exact count. Hence after admitting, no interval of
 * length windowMs ending at an admitted event — and therefore no interval at all — holds more than
 * `limit` admitted events. The price: a bucket only leaves the sum once its *last* millisecond has
 * aged out, so a refusal can last up to one bucket width longer than an exact log would say.
 *
 * Memory is bounded: the window overlaps at most ceil(windowMs / width) + 1 buckets, kept in a
 * ring indexed by absolute bucket number (B + 1 slots for the default geometry).
 */

export const DEFAULT_BUCKETS = 10;

export interface WindowGeometry {
  /** Bucket width in ms (≥ 1). */
  readonly width: number;
  /** Ring size: the most buckets that can overlap one window. */
  readonly slots: number;
}

export interface WindowState {
  readonly windowMs: number;
  readonly width: number;
  /** counts[mod(k, slots)] = events admitted in absolute bucket k, for k in (head − slots, head]. */
  readonly counts: Uint32Array;
  /** Absolute index of the newest bucket (−Infinity before the first event). */
  head: number;
  /**
   * Sum of every count in the ring, kept by `advance` and `record`: the admit check (every frame
   * of every socket) subtracts the one or two buckets the window no longer overlaps instead of
   * summing the ring.
   */
  total: number;
}

export function geometry(windowMs: number, buckets: number = DEFAULT_BUCKETS): WindowGeometry {
  if (!(windowMs >= 1) || !Number.isFinite(windowMs)) throw new RangeError(`windowMs must be ≥ 1, got ${windowMs}`);
  if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`buckets must be a positive integer, got ${buckets}`);
  const width = Math.max(1, Math.ceil(windowMs / buckets));
  return { width, slots: Math.ceil(windowMs / width) + 1 };
}

export function createWindow(windowMs: number, buckets: number = DEFAULT_BUCKETS): WindowState {
  const { width, slots } = geometry(windowMs, buckets);
  return { windowMs, width, counts: new Uint32Array(slots), head: Number.NEGATIVE_INFINITY, total: 0 };
}

function mod(k: number, n: number): number {
  const r = k % n;
  return r < 0 ? r + n : r;
}

/**
 * Rotate the ring to `now`: buckets that fell out of it are zeroed. A clock that went backwards
 * keeps the newer head (so recent events stay counted: conservative).
 */
export function advance(s: WindowState, now: number): void {
  const k = Math.floor(Math.floor(now) / s.width);
  if (k <= s.head) return;
  const n = s.counts.length;
  if (k - s.head >= n) {
    s.counts.fill(0);
    s.total = 0;
  } else {
    for (let j = s.head + 1; j <= k; j++) {
      const i = mod(j, n);
      s.total -= s.counts[i]!;
      s.counts[i] = 0;
    }
  }
  s.head = k;
}

/** Oldest bucket that still overlaps the window at `t` (and is still held in the ring). */
function oldestLive(s: WindowState, t: number): number {
  return Math.max(Math.floor((t - s.windowMs + 1) / s.width), s.head - s.counts.length + 1);
}

/**
 * 0 when one more event at `now` fits under `limit`; otherwise the ms until it would (assuming
 * nothing else is admitted meanwhile): exactly the first moment enough of the oldest buckets have
 * aged out. Call `advance(s, now)` first. Does not modify the state.
 */
export function retryAfter(s: WindowState, limit: number, now: number): number {
  const t = Math.floor(now);
  const n = s.counts.length;
  const from = oldestLive(s, t);
  // The ring's total less the buckets older than the window's oldest (at most a couple).
  let sum = s.total;
  if (s.head !== Number.NEGATIVE_INFINITY) for (let j = s.head - n + 1; j < from; j++) sum -= s.counts[mod(j, n)]!;
  if (sum < limit) return 0;
  // A rule that admits nothing is refused for a whole window at a time.
  if (limit < 1) return s.windowMs;
  // Drop buckets oldest first; once bucket j is gone (at t' with oldestLive(t') = j + 1, i.e.
  // t' = (j + 1)·width + windowMs − 1) the remaining sum fits.
  for (let j = from; j <= s.head; j++) {
    sum -= s.counts[mod(j, n)] ?? 0;
    if (sum < limit) return (j + 1) * s.width + s.windowMs - 1 - t;
  }
  return s.windowMs; // unreachable: the empty suffix sums to 0 < limit
}

/** Count one event in the newest bucket. Call after `advance` (and a 0 from `retryAfter`). */
export function record(s: WindowState): void {
  const i = mod(s.head, s.counts.length);
  s.counts[i] = (s.counts[i] ?? 0) + 1;
  s.total++;
}

/** True when no bucket overlaps the window at `now` any more: the state can be dropped. */
export function isIdle(s: WindowState, now: number): boolean {
  return Math.floor((Math.floor(now) - s.windowMs + 1) / s.width) > s.head;
}

/** Ms from `now` until `isIdle` becomes true (used for Redis PEXPIRE). */
export function idleAfter(head: number, width: number, windowMs: number, now: number): number {
  return (head + 1) * width + windowMs - 1 - Math.floor(now);
}
