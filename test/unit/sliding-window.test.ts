import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  advance,
  createWindow,
  geometry,
  idleAfter,
  isIdle,
  record,
  retryAfter,
  type WindowState,
} from '../../src/limits/sliding-window.js';

/** Offer one event at `t`; true when admitted (and counted). */
function offer(s: WindowState, limit: number, t: number): boolean {
  advance(s, t);
  if (retryAfter(s, limit, t) > 0) return false;
  record(s);
  return true;
}

/** Exact sliding log: admitted events in (t − windowMs, t]. */
function exactCount(log: readonly number[], windowMs: number, t: number): number {
  let n = 0;
  for (const x of log) if (x > t - windowMs && x <= t) n++;
  return n;
}

/**
 * Largest number of events in any interval (a, a + windowMs]. The maximum is reached by an
 * interval ending at an event, so checking those right ends covers every interval.
 */
function maxInAnyWindow(sorted: readonly number[], windowMs: number): number {
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while (sorted[lo]! <= sorted[hi]! - windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

const scenario = fc.record({
  windowMs: fc.integer({ min: 1, max: 2000 }),
  buckets: fc.integer({ min: 1, max: 20 }),
  limit: fc.integer({ min: 1, max: 12 }),
  // Offsets from an arbitrary epoch; sorted, duplicates allowed (several events in one ms).
  start: fc.integer({ min: 0, max: 2_000_000_000_000 }),
  gaps: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 3000 })), {
    minLength: 1,
    maxLength: 300,
  }),
});

test('never admits more than limit in any interval of windowMs (vs an exact sliding log)', () => {
  fc.assert(
    fc.property(scenario, ({ windowMs, buckets, limit, start, gaps }) => {
      const s = createWindow(windowMs, buckets);
      const { width } = geometry(windowMs, buckets);
      const admitted: number[] = [];
      let t = start;
      for (const gap of gaps) {
        t += gap;
        const before = exactCount(admitted, windowMs, t);
        if (offer(s, limit, t)) {
          // Conservative: the exact log of what was admitted would also have admitted it.
          assert.ok(before < limit, `admitted at ${t} with ${before} already in the window`);
          admitted.push(t);
        } else {
          // Not needlessly strict: a refusal means ≥ limit admitted within windowMs + one bucket.
          assert.ok(exactCount(admitted, windowMs + width, t) >= limit, `refused at ${t} with too few recent events`);
        }
      }
      assert.ok(maxInAnyWindow(admitted, windowMs) <= limit);
    }),
    { numRuns: 500 },
  );
});

test('retryAfter is exact: the event passes after retryAfter ms, not after retryAfter − 1', () => {
  fc.assert(
    fc.property(scenario, fc.integer({ min: 0, max: 50 }), ({ windowMs, buckets, limit, start, gaps }, probes) => {
      const s = createWindow(windowMs, buckets);
      let t = start;
      let checked = 0;
      for (const gap of gaps) {
        t += gap;
        advance(s, t);
        const wait = retryAfter(s, limit, t);
        if (wait === 0) {
          record(s);
          continue;
        }
        if (checked++ > probes) continue;
        assert.ok(wait >= 1 && wait <= windowMs + geometry(windowMs, buckets).width, `retryAfter ${wait}`);
        // Probe copies, so the scenario itself goes on unchanged.
        const early = { ...s, counts: s.counts.slice() };
        advance(early, t + wait - 1);
        assert.ok(retryAfter(early, limit, t + wait - 1) > 0, 'passed one ms early');
        const onTime = { ...s, counts: s.counts.slice() };
        advance(onTime, t + wait);
        assert.equal(retryAfter(onTime, limit, t + wait), 0, 'still refused after retryAfter');
      }
    }),
    { numRuns: 300 },
  );
});

test('burst: 10 per 1000 ms, then refused until the first bucket ages out', () => {
  const s = createWindow(1000, 10);
  const t0 = 5_000_000; // bucket-aligned
  for (let i = 0; i < 10; i++) assert.ok(offer(s, 10, t0));
  advance(s, t0);
  // Bucket [t0, t0 + 100) leaves the window (t − 1000, t] at t = t0 + 1099.
  assert.equal(retryAfter(s, 10, t0), 1099);
  assert.equal(offer(s, 10, t0 + 1098), false);
  assert.equal(offer(s, 10, t0 + 1099), true);
});

test('no 2× burst at a window edge: 9 at t=999, then 10 at t=1001 → at most 1 more', () => {
  const s = createWindow(1000, 10);
  for (let i = 0; i < 9; i++) assert.ok(offer(s, 10, 999));
  let admitted = 0;
  for (let i = 0; i < 10; i++) if (offer(s, 10, 1001)) admitted++;
  assert.equal(admitted, 1);
});

test('memory is bounded: the ring holds B + 1 buckets whatever the traffic', () => {
  assert.deepEqual(geometry(1000, 10), { width: 100, slots: 11 });
  assert.deepEqual(geometry(60_000, 10), { width: 6000, slots: 11 });
  assert.deepEqual(geometry(7, 10), { width: 1, slots: 8 });
  const s = createWindow(1000, 10);
  for (let t = 0; t < 100_000; t += 7) offer(s, 1_000_000, t);
  assert.equal(s.counts.length, 11);
});

test('idle detection matches the moment the last bucket leaves the window', () => {
  const s = createWindow(1000, 10);
  assert.ok(isIdle(s, 0));
  offer(s, 10, 1234);
  const idleIn = idleAfter(s.head, s.width, s.windowMs, 1234);
  assert.equal(isIdle(s, 1234 + idleIn - 1), false);
  assert.equal(isIdle(s, 1234 + idleIn), true);
});

test('a clock that goes backwards keeps counting conservatively', () => {
  const s = createWindow(1000, 10);
  for (let i = 0; i < 5; i++) assert.ok(offer(s, 5, 10_000));
  assert.equal(offer(s, 5, 9_500), false);
  assert.equal(offer(s, 5, 9_000), false);
});

test('a zero limit admits nothing and asks to retry after a window', () => {
  const s = createWindow(1000, 10);
  advance(s, 0);
  assert.equal(retryAfter(s, 0, 0), 1000);
});

test('invalid geometry is rejected', () => {
  assert.throws(() => geometry(0, 10), RangeError);
  assert.throws(() => geometry(1000, 0), RangeError);
  assert.throws(() => geometry(1000, 1.5), RangeError);
});

/** retryAfter as first written: the window's overlapping buckets summed one by one. */
function retryAfterBySum(s: WindowState, limit: number, now: number): number {
  const t = Math.floor(now);
  const n = s.counts.length;
  const from = Math.max(Math.floor((t - s.windowMs + 1) / s.width), s.head - n + 1);
  let sum = 0;
  for (let j = from; j <= s.head; j++) sum += s.counts[((j % n) + n) % n] ?? 0;
  if (sum < limit) return 0;
  if (limit < 1) return s.windowMs;
  for (let j = from; j <= s.head; j++) {
    sum -= s.counts[((j % n) + n) % n] ?? 0;
    if (sum < limit) return (j + 1) * s.width + s.windowMs - 1 - t;
  }
  return s.windowMs;
}

test('the running total gives the same answers as summing the buckets, clock jumps and backward steps included (seeded)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 2000 }),
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 0, max: 12 }),
      fc.integer({ min: 0, max: 2_000_000_000_000 }),
      fc.array(fc.oneof(fc.constant(0), fc.integer({ min: -300, max: 50 }), fc.integer({ min: 0, max: 5000 })), { maxLength: 300 }),
      (windowMs, buckets, limit, start, steps) => {
        const s = createWindow(windowMs, buckets);
        assert.equal(retryAfter(s, limit, start), retryAfterBySum(s, limit, start));
        let t = start;
        for (const step of steps) {
          t = Math.max(0, t + step);
          advance(s, t);
          const expected = retryAfterBySum(s, limit, t);
          assert.equal(retryAfter(s, limit, t), expected);
          if (expected === 0) record(s);
          let sum = 0;
          for (const c of s.counts) sum += c;
          assert.equal(s.total, sum);
        }
      },
    ),
    { numRuns: 500, seed: 20261127 },
  );
});
