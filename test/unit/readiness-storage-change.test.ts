/**
 * Readiness tells `onStorageChange` when storage's state changes, never per ping: the error log
 * says why `/readyz` is 503 (its body does not) without a line per load-balancer probe. A first
 * answer "up" is no change; a ping that hangs past storageTimeoutMs is reported as 'timeout'.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadiness } from '../../src/server/readiness.js';

test('one report per change of state, with the cause; none while draining', async () => {
  let fail: Error | 'hang' | undefined;
  let clock = 0;
  let draining = false;
  const seen: [boolean, unknown][] = [];
  const r = createReadiness({
    ping: () => (fail === 'hang' ? new Promise<void>(() => {}) : fail ? Promise.reject(fail) : Promise.resolve()),
    busUp: () => true,
    draining: () => draining,
    storageTimeoutMs: 5,
    storageCacheMs: 10,
    now: () => clock,
    onStorageChange: (up, cause) => seen.push([up, cause]),
  });
  const ask = async (): Promise<boolean> => {
    clock += 10;
    return r.storageUp();
  };
  assert.equal(await ask(), true);
  assert.deepEqual(seen, [], 'up from the start is no change');
  const down = new Error('connection refused');
  fail = down;
  for (let i = 0; i < 3; i++) assert.equal(await ask(), false);
  assert.deepEqual(seen, [[false, down]], 'one report for three failed pings');
  fail = undefined;
  assert.equal(await ask(), true);
  assert.equal(await ask(), true);
  assert.deepEqual(seen.slice(1), [[true, undefined]]);
  fail = 'hang';
  assert.equal(await ask(), false);
  assert.deepEqual(seen.slice(2), [[false, 'timeout']]);
  fail = undefined;
  await ask();
  seen.length = 0;
  draining = true;
  fail = down;
  await ask();
  assert.deepEqual(seen, [], 'a store closed by shutdown is no outage');
});

test('storage down at the first answer is reported', async () => {
  const seen: boolean[] = [];
  const r = createReadiness({
    ping: () => Promise.reject(new Error('no')),
    busUp: () => true,
    draining: () => false,
    storageTimeoutMs: 1000,
    onStorageChange: (up) => seen.push(up),
  });
  assert.equal(await r.storageUp(), false);
  assert.deepEqual(seen, [false]);
});
