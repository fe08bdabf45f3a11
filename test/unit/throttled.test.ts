/** throttled: at most one call per interval; the next one that runs is told how many were held back. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { throttled } from '../../src/observability/throttled.js';

test('one call per interval, and the count of the ones held back', () => {
  let t = 0;
  const logged: [string, number][] = [];
  const log = throttled<string>(1000, (arg, heldBack) => logged.push([arg, heldBack]), () => t);
  log('a');
  log('b');
  log('c');
  t = 999;
  log('d');
  t = 1000;
  log('e');
  log('f');
  t = 5000;
  log('g');
  assert.deepEqual(logged, [['a', 0], ['e', 3], ['g', 1]]);
});
