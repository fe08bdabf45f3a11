/**
 * throttled: at most one call per interval; what it held back is logged once when the interval
 * ends (the last argument and the count), and at close.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { throttled } from '../../src/observability/throttled.js';

test('one call per interval; the held-back ones are reported once when it ends, even if nothing follows', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let now = 0;
  const logged: [string, number][] = [];
  const log = throttled<string>(1000, (arg, heldBack) => logged.push([arg, heldBack]), () => now);
  log('a');
  log('b');
  now = 400;
  log('c');
  assert.deepEqual(logged, [['a', 0]]);
  now = 1000;
  t.mock.timers.tick(1000);
  assert.deepEqual(logged, [['a', 0], ['c', 2]], 'the burst is accounted for when the interval ends');
  now = 1500;
  log('d');
  assert.deepEqual(logged.length, 2, 'within the interval of the report');
  now = 2000;
  t.mock.timers.tick(1000);
  now = 3000;
  log('e');
  assert.deepEqual(logged, [['a', 0], ['c', 2], ['d', 1], ['e', 0]]);
  log('f');
  log.close();
  assert.deepEqual(logged.at(-1), ['f', 1], 'close reports what is held back');
  log.close();
  assert.equal(logged.length, 5, 'and only once');
});
