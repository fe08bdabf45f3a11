/** The retention schedule: a prune at start, then one per interval, never two at once. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scheduleRetention } from '../../src/server/retention.js';

test('a prune still running when the interval comes round is not joined by another', async () => {
  const started: number[] = [];
  let finish!: () => void;
  const schedule = scheduleRetention({
    prune: (olderThan) => {
      started.push(olderThan);
      return new Promise<void>((resolve) => (finish = resolve));
    },
    retentionMs: 1000,
    intervalMs: 10,
    onError: (err) => assert.fail(String(err)),
    now: () => 5000,
  });
  try {
    await new Promise((r) => setTimeout(r, 50)); // several intervals while the first prune runs
    assert.deepEqual(started, [4000], 'the start-up prune, with the retention cut-off; nothing beside it');
    finish();
    await new Promise((r) => setTimeout(r, 30));
    assert.ok(started.length >= 2, 'once it finished, the next interval prunes again');
  } finally {
    schedule.close();
    finish();
  }
});

test('a failed prune is reported and the next interval tries again', async () => {
  const errors: unknown[] = [];
  let calls = 0;
  const schedule = scheduleRetention({
    prune: async () => {
      calls++;
      throw new Error('storage away');
    },
    retentionMs: 1000,
    intervalMs: 10,
    onError: (err) => errors.push(err),
  });
  try {
    await new Promise((r) => setTimeout(r, 40));
    assert.ok(calls >= 2 && errors.length === calls);
  } finally {
    schedule.close();
  }
});
