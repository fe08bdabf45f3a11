/**
 * Readiness (src/server/readiness.ts): a flood of /readyz is one storage ping at a time, its answer
 * reused for storageCacheMs; a ping that hangs counts as down after storageTimeoutMs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadiness } from '../../src/server/readiness.js';

function fakePing() {
  const calls: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const ping = (): Promise<void> => new Promise<void>((resolve, reject) => calls.push({ resolve, reject }));
  return { ping, calls };
}

test('concurrent callers share one ping; its answer stands for storageCacheMs, then a new ping runs', async () => {
  const { ping, calls } = fakePing();
  let clock = 0;
  const r = createReadiness({ ping, busUp: () => true, draining: () => false, storageTimeoutMs: 60_000, storageCacheMs: 1000, now: () => clock });
  const answers = Array.from({ length: 100 }, () => r.ready());
  assert.equal(calls.length, 1, '100 requests, one ping');
  calls[0]!.resolve();
  assert.deepEqual(new Set(await Promise.all(answers)), new Set([true]));
  clock = 999;
  assert.equal(await r.storageUp(), true);
  assert.equal(calls.length, 1, 'the answer is reused within storageCacheMs');
  clock = 1000;
  const next = r.storageUp();
  assert.equal(calls.length, 2, 'then storage is asked again');
  calls[1]!.reject(new Error('down'));
  assert.equal(await next, false);
  assert.equal(await r.ready(), false, 'a failed ping is reused too');
  assert.equal(calls.length, 2);
});

test('a ping that never answers is down after storageTimeoutMs; draining or a bus down is not ready without a ping', async () => {
  const { ping, calls } = fakePing();
  let clock = 0;
  let draining = false;
  const r = createReadiness({ ping, busUp: () => true, draining: () => draining, storageTimeoutMs: 5, storageCacheMs: 1000, now: () => clock });
  assert.equal(await r.storageUp(), false);
  assert.equal(calls.length, 1);
  // Past the cache, storage is asked again, but the stalled ping is still the one: no second query.
  clock = 2000;
  assert.equal(await r.storageUp(), false);
  assert.equal(calls.length, 1, 'a stalled ping is never doubled');
  calls[0]!.resolve();
  await new Promise((res) => setImmediate(res));
  clock = 4000;
  const again = r.storageUp();
  assert.equal(calls.length, 2, 'once it settled, the next ask pings again');
  calls[1]!.resolve();
  assert.equal(await again, true);
  draining = true;
  clock = 5000;
  clock = 9000;
  assert.equal(await r.ready(), false);
  assert.equal(calls.length, 2, 'draining answers without a ping');
  const down = createReadiness({ ping, busUp: () => false, draining: () => false, storageTimeoutMs: 5 });
  assert.equal(await down.ready(), false);
  assert.equal(calls.length, 2);
});
