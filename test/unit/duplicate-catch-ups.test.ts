/**
 * Which duplicates make the members read their timelines (src/chat/duplicate-catch-ups.ts): an
 * event stored within the window, once per event per window; old keys and replays cost nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DuplicateCatchUps } from '../../src/chat/duplicate-catch-ups.js';

test('recent events once per window; old events never; memory bounded', () => {
  let now = 1_000_000;
  const d = new DuplicateCatchUps(300_000, () => now, 3);
  assert.equal(d.shouldCatchUp('m1', now - 1000), true, 'a resend seconds after the lost commit');
  assert.equal(d.shouldCatchUp('m1', now - 1000), false, 'the same event again within the window');
  assert.equal(d.shouldCatchUp('old', now - 300_001), false, 'stored long ago: its members have long had it');
  now += 300_000;
  assert.equal(d.shouldCatchUp('m1', now - 200_000), true, 'a window later, still recent: once more');
  for (const id of ['a', 'b', 'c']) assert.equal(d.shouldCatchUp(id, now), true);
  // Past the bound everything is forgotten at once: at worst one more read, never a missed one.
  assert.equal(d.shouldCatchUp('b', now), true);
});
