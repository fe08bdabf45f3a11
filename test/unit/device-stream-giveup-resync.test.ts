/**
 * DeviceStream: a bus resync (catchUp) that arrives after a read gave up, while held frames drain
 * paced, reads storage at once instead of waiting for the retry timer (4 s the first time, up to 30 s).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { frameAt, FakeOutlet, FakeTimeline, stream, settle } from '../helpers/device-stream-harness.js';

test('a bus resync (catchUp) that arrives after a give-up, while held frames drain paced, reads storage without waiting for the retry timer', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  // retryMs large, one attempt per read: no sleeps between attempts; the retry timer is far away.
  const { s, calls } = stream(outlet, tl, { readAttempts: 1, retryMs: 1_000_000, maxRetryMs: 3_600_000, drainBelow: 0 });
  tl.failNext = 1; // storage is away for the first read
  s.offer(1, frameAt(1)); // held before start
  outlet.buffered = 10_000_000; // the socket is full: the drain of held frames waits
  const done = s.start(0);
  await outlet.count(1); // the read gave up; held 1 went out and the drain waits for the socket
  assert.equal(calls.giveUp, 1);
  assert.equal(outlet.drainWaits.length, 1);
  // Storage is back and holds 2, 3 (their bus frames were lost); the bus says so.
  tl.append(1, 2, 3);
  s.catchUp();
  outlet.buffered = 0;
  outlet.drainWaits.shift()!.resolve();
  await done;
  await settle();
  assert.deepEqual(outlet.positions(), [1, 2, 3], `reads: ${tl.reads.length}`);
  s.close();
});
