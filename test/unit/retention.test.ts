/** The retention schedule: a prune at start, then one per interval, never two at once. On mocked intervals. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scheduleRetention } from '../../src/server/retention.js';

/** Lets the prune's promise callbacks run (setImmediate is not mocked). */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('a prune still running when the interval comes round is not joined by another', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
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
    t.mock.timers.tick(50); // five intervals while the first prune runs
    await settle();
    assert.deepEqual(started, [4000], 'the start-up prune, with the retention cut-off; nothing beside it');
    finish();
    await settle();
    t.mock.timers.tick(10);
    assert.deepEqual(started, [4000, 4000], 'once it finished, the next interval prunes again');
  } finally {
    schedule.close();
    finish();
  }
});

test('a failed prune is reported and the next interval tries again', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
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
    await settle();
    for (let i = 0; i < 2; i++) {
      t.mock.timers.tick(10);
      await settle();
    }
    assert.equal(calls, 3, 'the start-up prune and one per interval');
    assert.equal(errors.length, calls, 'every failure reported');
  } finally {
    schedule.close();
  }
});
