import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLimiter } from '../../src/limits/memory-limiter.js';
import type { RateRule } from '../../src/limits/limiter.js';

const BURST: RateRule = { name: 'burst', limit: 10, windowMs: 1000 };
const MINUTE: RateRule = { name: 'minute', limit: 60, windowMs: 60_000 };
const RULES = [BURST, MINUTE] as const;

test('answers synchronously, and the admitted answer is one shared object (no allocation)', async () => {
  const limiter = new MemoryLimiter();
  const first = limiter.consume('k', RULES, 1000);
  assert.ok(!(first instanceof Promise));
  assert.deepEqual(first, { allowed: true });
  assert.equal(limiter.consume('k', RULES, 1001), first);
  assert.ok(Object.isFrozen(first));
  await limiter.close();
});

test('refusal names the failing rule with a retryAfter that holds', async () => {
  const limiter = new MemoryLimiter();
  for (let i = 0; i < 10; i++) assert.equal(limiter.consume('k', RULES, 10_000).allowed, true);
  const refused = limiter.consume('k', RULES, 10_000);
  assert.ok(!refused.allowed);
  assert.equal(refused.rule, 'burst');
  assert.equal(limiter.consume('k', RULES, 10_000 + refused.retryAfter - 1).allowed, false);
  assert.equal(limiter.consume('k', RULES, 10_000 + refused.retryAfter).allowed, true);
  await limiter.close();
});

test('idle keys are evicted by sweep; a running block keeps its key', async () => {
  const limiter = new MemoryLimiter({ sweepIntervalMs: 0 });
  for (let i = 0; i < 10_000; i++) limiter.consume(`ip-${i}`, RULES, 0);
  limiter.block('bad', 120_000, 0);
  assert.equal(limiter.size(), 10_001);
  limiter.sweep(30_000); // the minute window still holds every key
  assert.equal(limiter.size(), 10_001);
  // The minute window's first bucket [0, 6000) leaves (t − 60000, t] at t = 65 999.
  limiter.sweep(65_998);
  assert.equal(limiter.size(), 10_001);
  limiter.sweep(65_999); // every window aged out; the block has not
  assert.equal(limiter.size(), 1);
  assert.equal(limiter.blockedFor('bad', 65_999), 54_001);
  limiter.sweep(120_000);
  assert.equal(limiter.size(), 0);
  await limiter.close();
});

test('a key swept and seen again starts fresh', async () => {
  const limiter = new MemoryLimiter({ sweepIntervalMs: 0 });
  for (let i = 0; i < 10; i++) limiter.consume('k', [BURST], 0);
  assert.equal(limiter.consume('k', [BURST], 0).allowed, false);
  limiter.sweep(5_000);
  assert.equal(limiter.size(), 0);
  assert.equal(limiter.consume('k', [BURST], 5_000).allowed, true);
  await limiter.close();
});

test('the sweep timer does not keep the process alive and close() stops it', async () => {
  const limiter = new MemoryLimiter({ sweepIntervalMs: 10 });
  limiter.consume('k', [BURST], Date.now() - 10_000);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(limiter.size(), 0, 'the timer swept the stale key');
  await limiter.close();
});

test('rules are matched by name whatever their order; a changed window starts over', async () => {
  const limiter = new MemoryLimiter();
  for (let i = 0; i < 10; i++) limiter.consume('k', [BURST, MINUTE], 0);
  const r = limiter.consume('k', [MINUTE, BURST], 0);
  assert.ok(!r.allowed);
  assert.equal(r.rule, 'burst');
  // Same name, new window length: old counts do not apply.
  assert.equal(limiter.consume('k', [{ name: 'burst', limit: 10, windowMs: 2000 }], 0).allowed, true);
  await limiter.close();
});

test('fractional `now` (performance.now style) is floored consistently', async () => {
  const limiter = new MemoryLimiter();
  for (let i = 0; i < 10; i++) assert.equal(limiter.consume('k', [BURST], 100.9).allowed, true);
  const r = limiter.consume('k', [BURST], 100.2);
  assert.ok(!r.allowed);
  assert.equal(r.retryAfter, 1099);
  await limiter.close();
});
