/**
 * DeviceStream: a gap storage cannot fill in a few reads waits for the next event — but an event
 * that came while the last of those reads ran (a catch-up, a live frame ahead) is that event: the
 * stream reads again instead of waiting for another one while storage already has the entries.
 * Fake outlet and in-memory timeline; every wait is on an event, never on time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceStream } from '../../src/sync/device-stream.js';
import type { TimelinePage } from '../../src/store/store.js';
import { frameAt, FakeOutlet, FakeTimeline, stream, settle } from '../helpers/device-stream-harness.js';

test('a catch-up asked for during the last idle read (gap remaining) still reads storage again', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1);
  let s!: DeviceStream;
  // Wrap the reader: during its 4th read (the one after which the idle bound is hit), storage
  // gets position 2 and the bus reports a resync (catchUp) — after that read's snapshot.
  let n = 0;
  const reader = async (after: number, limit: number): Promise<TimelinePage> => {
    const page = await tl.read(after, limit);
    n++;
    if (n === 4) {
      tl.append(2, 3);
      s.catchUp();
    }
    return page;
  };
  s = new DeviceStream(outlet, reader, {
    pageSize: 100, drainBelow: 0, maxHeldBytes: 1_000_000, readAttempts: 3, retryMs: 1, maxRetryMs: 3_600_000,
    onOverflow: () => {}, onReadFailed: () => {}, onGiveUp: () => {},
  });
  // 3 arrives live before start (held); storage shows only 1 for now.
  s.offer(3, frameAt(3));
  await s.start(0);
  await settle();
  assert.ok(n >= 4, `reads: ${n}`);
  // The catch-up was asked for while the 4th read ran: storage now holds 2 and 3.
  assert.deepEqual(outlet.positions(), [1, 2, 3], `reads: ${n}`);
  s.close();
});

test('a live frame that arrives during the last idle read (gap remaining) makes the stream read again', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1);
  let s!: DeviceStream;
  let n = 0;
  const reader = async (after: number, limit: number): Promise<TimelinePage> => {
    const page = await tl.read(after, limit);
    n++;
    if (n === 4) {
      // After this read's snapshot: 2, 3, 4 are committed and 4's bus frame arrives (held: reading).
      tl.append(2, 3, 4);
      s.offer(4, frameAt(4));
    }
    return page;
  };
  s = new DeviceStream(outlet, reader, {
    pageSize: 100, drainBelow: 0, maxHeldBytes: 1_000_000, readAttempts: 3, retryMs: 1, maxRetryMs: 3_600_000,
    onOverflow: () => {}, onReadFailed: () => {}, onGiveUp: () => {},
  });
  s.offer(3, frameAt(3)); // ahead of what storage shows (a lagging read), held
  await s.start(0);
  await settle();
  assert.deepEqual(outlet.positions(), [1, 2, 3, 4], `reads: ${n}`);
  s.close();
});
