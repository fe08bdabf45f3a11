/**
 * DeviceStream (src/sync/device-stream.ts) with a fake outlet and an in-memory timeline: one
 * strictly increasing, contiguous `pos` stream per session, whatever order live frames arrive in.
 * The fake reader answers in microtasks (or when a test releases it), so every wait below is on
 * an event, never on time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eventBody, timelineFrame } from '../../src/chat/timeline-frames.js';
import { message, frameAt, sentAt, posOf, FakeOutlet, FakeTimeline, stream, settle, keepingAlive, range } from '../helpers/device-stream-harness.js';

test('replay from the resume point, then live frames in order, sent at once', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2, 3, 4, 5);
  const { s } = stream(outlet, tl);
  await s.start(2);
  assert.deepEqual(outlet.sent, [frameAt(3), frameAt(4), frameAt(5)]);
  assert.equal(s.lastPos, 5);
  tl.append(6, 7);
  s.offer(6, frameAt(6));
  assert.deepEqual(outlet.positions(), [3, 4, 5, 6], 'an in-order live frame is sent synchronously');
  s.offer(7, frameAt(7));
  assert.deepEqual(outlet.positions(), [3, 4, 5, 6, 7]);
  assert.equal(tl.reads.length, 1, 'no storage read for in-order live frames');
});

test('the replay pages through storage (pageSize) until it reaches the end', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(...range(1, 7));
  const { s } = stream(outlet, tl, { pageSize: 3 });
  await s.start(0);
  assert.deepEqual(outlet.positions(), range(1, 7));
  assert.deepEqual(tl.reads, [{ after: 0, limit: 3 }, { after: 3, limit: 3 }, { after: 6, limit: 3 }]);
});

test('duplicates and frames the replay already covered are dropped', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2, 3);
  const { s } = stream(outlet, tl);
  await s.start(0);
  s.offer(2, frameAt(2)); // late: the replay sent it
  s.offer(3, frameAt(3));
  tl.append(4);
  s.offer(4, frameAt(4));
  s.offer(4, frameAt(4)); // a resent copy
  s.offer(1, frameAt(1));
  await settle();
  assert.deepEqual(outlet.positions(), [1, 2, 3, 4]);
  assert.equal(tl.reads.length, 1);
});

test('live frames that arrive during the replay are held and sent once, in place', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2);
  tl.hold();
  const { s } = stream(outlet, tl);
  // Offered before start: the stream is "reading" until it knows its resume point.
  tl.append(3);
  s.offer(3, frameAt(3));
  const started = s.start(0);
  tl.append(4);
  s.offer(4, frameAt(4));
  s.offer(2, frameAt(2));
  assert.deepEqual(outlet.sent, [], 'nothing goes out while the read runs');
  tl.release();
  await started;
  assert.deepEqual(outlet.positions(), [1, 2, 3, 4]);
  s.offer(5, frameAt(5));
  assert.deepEqual(outlet.positions(), [1, 2, 3, 4, 5]);
});

test('an out-of-order live frame is held and the gap is read from storage', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  const { s } = stream(outlet, tl);
  await s.start(0);
  // Two nodes wrote 1..3; the bus brought 3 first.
  tl.append(1, 2, 3);
  s.offer(3, frameAt(3));
  assert.deepEqual(outlet.sent, [], '3 is held: 1 and 2 come first');
  await outlet.count(3);
  assert.deepEqual(outlet.positions(), [1, 2, 3]);
  // Their own copies arriving late are dropped.
  s.offer(1, frameAt(1));
  s.offer(2, frameAt(2));
  s.offer(4, frameAt(4));
  await settle();
  assert.deepEqual(outlet.positions(), [1, 2, 3, 4]);
});

test('held frames are preferred over the storage copy (the sender gets message_sent, not its own message)', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  const { s } = stream(outlet, tl);
  await s.start(0);
  tl.append(1, 2, 3);
  // This session sent pos 2: its message_sent is offered, then pos 3 arrives from the bus before pos 1.
  s.offer(2, sentAt(2));
  s.offer(3, frameAt(3));
  await outlet.count(3);
  await settle();
  assert.deepEqual(outlet.sent, [frameAt(1), sentAt(2), frameAt(3)]);
});

test('the first held copy of a position wins', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.hold();
  const { s } = stream(outlet, tl);
  const started = s.start(0);
  tl.append(1);
  s.offer(1, sentAt(1));
  s.offer(1, frameAt(1));
  tl.release();
  await started;
  assert.deepEqual(outlet.sent, [sentAt(1)]);
});

test('a gap storage cannot fill yet: the stream waits for the next event instead of spinning', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  const { s } = stream(outlet, tl);
  await s.start(0);
  tl.append(1);
  // 3 arrives although storage shows only 1 (a replica lagging, say): 1 is sent, 3 stays held.
  s.offer(3, frameAt(3));
  await outlet.count(1);
  await settle();
  assert.deepEqual(outlet.positions(), [1]);
  const reads = tl.reads.length;
  assert.ok(reads >= 2 && reads <= 5, `a bounded number of re-reads (${reads})`);
  await settle();
  assert.equal(tl.reads.length, reads, 'no further reads without a new event');
  // The next event reads again and fills the gap; the held 3 goes out after 2.
  tl.append(2, 3, 4);
  s.offer(4, frameAt(4));
  await outlet.count(4);
  assert.deepEqual(outlet.positions(), [1, 2, 3, 4]);
});

test('pruned resume point: timeline_pruned {after, firstPos}, then the rest', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(...range(1, 8));
  tl.firstPos = 5;
  const { s } = stream(outlet, tl);
  await s.start(2);
  assert.equal(outlet.sent[0], '{"type":"timeline_pruned","after":2,"firstPos":5}');
  assert.deepEqual(JSON.parse(outlet.sent[0]!), { type: 'timeline_pruned', after: 2, firstPos: 5 });
  assert.deepEqual(outlet.positions().slice(1), [5, 6, 7, 8]);
  assert.equal(s.lastPos, 8);
});

test('a resume point at the pruning edge is not reported as pruned', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(...range(1, 6));
  tl.firstPos = 4;
  const { s } = stream(outlet, tl);
  await s.start(3);
  assert.deepEqual(outlet.positions(), [4, 5, 6]);
});

test('everything pruned (timeline empty after retention): timeline_pruned names lastPos + 1', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2, 3);
  tl.firstPos = 10; // every entry deleted
  const { s } = stream(outlet, tl);
  await s.start(1);
  assert.deepEqual(outlet.sent, ['{"type":"timeline_pruned","after":1,"firstPos":4}']);
  assert.equal(s.lastPos, 3);
  s.offer(4, frameAt(4));
  assert.deepEqual(outlet.positions(), [-1, 4]);
});

test('held bytes past maxHeldBytes call onOverflow', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.hold();
  const frameLen = frameAt(2).length;
  const { s, calls } = stream(outlet, tl, { maxHeldBytes: frameLen * 2 + 1 });
  const started = s.start(0);
  s.offer(2, frameAt(2));
  s.offer(3, frameAt(3));
  assert.equal(calls.overflow, 0, 'two frames fit');
  s.offer(4, frameAt(4));
  assert.equal(calls.overflow, 1, 'the third passes the bound');
  // The session closes on overflow.
  outlet.isOpen = false;
  s.close();
  tl.release();
  await started;
  assert.deepEqual(outlet.sent, []);
});

test('a duplicate held frame does not count twice against maxHeldBytes', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.hold();
  const { s, calls } = stream(outlet, tl, { maxHeldBytes: frameAt(2).length + 1 });
  const started = s.start(0);
  for (let i = 0; i < 10; i++) s.offer(2, frameAt(2));
  assert.equal(calls.overflow, 0);
  tl.append(1, 2);
  tl.release();
  await started;
  assert.deepEqual(outlet.positions(), [1, 2]);
});

test('read failures are retried; after readAttempts the stream gives up (onGiveUp) and never rejects', () => keepingAlive(async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2);
  tl.failNext = 100;
  const { s, calls, gaveUp } = stream(outlet, tl, { readAttempts: 3 });
  await s.start(0); // resolves, never rejects
  await gaveUp;
  assert.equal(calls.readFailed, 3);
  assert.equal(calls.giveUp, 1);
  assert.deepEqual(outlet.sent, []);
  assert.equal(s.lastPos, 0);
  // Storage is back: the next event tries again and fills the gap.
  tl.failNext = 0;
  tl.append(3);
  s.offer(3, frameAt(3));
  await outlet.count(3);
  assert.deepEqual(outlet.positions(), [1, 2, 3]);
  s.close(); // clears the retry timer armed by the give-up
}));

test('after a give-up the stream reads again by itself (a quiet user gets the backlog without a new event); onGiveUp once per outage', () => keepingAlive(async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2);
  // Two whole rounds of attempts fail, then one more read: the third round gets through.
  tl.failNext = 7;
  const { s, calls } = stream(outlet, tl, { readAttempts: 3, retryMs: 1, maxRetryMs: 4 });
  await s.start(0);
  assert.equal(calls.giveUp, 1);
  await outlet.count(2);
  assert.deepEqual(outlet.positions(), [1, 2]);
  assert.equal(calls.readFailed, 7);
  assert.equal(calls.giveUp, 1, 'the client is told once, not at every retry');
  // A later outage is a new one: told again.
  tl.failNext = 3;
  tl.append(3);
  s.catchUp();
  await outlet.count(3);
  assert.equal(calls.giveUp, 2);
  s.close();
}));

test('a closed stream stops retrying', () => keepingAlive(async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1);
  tl.failNext = 1000;
  const maxRetryMs = 2;
  const { s, calls, gaveUp } = stream(outlet, tl, { readAttempts: 2, retryMs: 1, maxRetryMs });
  void s.start(0);
  await gaveUp;
  await settle(); // the give-up has armed its retry timer: close must clear it
  s.close();
  const failed = calls.readFailed;
  // The absence of a retry: ten retry periods pass without a read.
  await new Promise((r) => setTimeout(r, 10 * maxRetryMs));
  assert.equal(calls.readFailed, failed, 'no read after close');
  assert.deepEqual(outlet.sent, []);
}));

test('a read that fails and then succeeds delivers everything, without onGiveUp', () => keepingAlive(async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2, 3);
  tl.failNext = 2;
  const { s, calls } = stream(outlet, tl, { readAttempts: 3 });
  await s.start(0);
  assert.equal(calls.readFailed, 2);
  assert.equal(calls.giveUp, 0);
  assert.deepEqual(outlet.positions(), [1, 2, 3]);
}));

test('catchUp while a read runs: the stream reads again after it, so nothing committed meanwhile is missed', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.hold();
  const { s } = stream(outlet, tl);
  const reading = tl.nextRead();
  const started = s.start(0);
  await reading; // the first read took its (empty) snapshot
  tl.append(1, 2); // committed after the snapshot; their bus frames were lost
  s.catchUp();
  tl.release();
  await started;
  assert.deepEqual(outlet.positions(), [1, 2]);
  assert.ok(tl.reads.length >= 2);
});

test('catchUp when idle reads the gap from storage (the bus lost frames)', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  const { s } = stream(outlet, tl);
  await s.start(0);
  tl.append(1, 2, 3);
  s.catchUp();
  await outlet.count(3);
  assert.deepEqual(outlet.positions(), [1, 2, 3]);
  // Nothing new: a catch-up reads and sends nothing.
  s.catchUp();
  await settle();
  assert.deepEqual(outlet.positions(), [1, 2, 3]);
});

test('catchUp before start, or on a closed outlet, does nothing', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1);
  const { s } = stream(outlet, tl);
  s.catchUp();
  await settle();
  assert.equal(tl.reads.length, 0);
  await s.start(0);
  outlet.isOpen = false;
  tl.append(2);
  s.catchUp();
  s.offer(2, frameAt(2));
  await settle();
  assert.equal(tl.reads.length, 1);
  assert.deepEqual(outlet.positions(), [1]);
});

test('the replay is paced: it waits while the socket holds too many unsent bytes', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2, 3);
  const { s } = stream(outlet, tl, { drainBelow: 100_000 });
  outlet.buffered = 200_000;
  let done = false;
  const started = s.start(0).then(() => (done = true));
  await outlet.count(1);
  await settle();
  assert.deepEqual(outlet.positions(), [1], 'paused after the first frame');
  assert.equal(outlet.drainWaits.length, 1);
  assert.equal(outlet.drainWaits[0]!.bytes, 100_000);
  // Live frames meanwhile are held, not sent past the replay.
  tl.append(4);
  s.offer(4, frameAt(4));
  assert.deepEqual(outlet.positions(), [1]);
  outlet.buffered = 0;
  outlet.drainWaits.shift()!.resolve();
  await started;
  assert.ok(done);
  assert.deepEqual(outlet.positions(), [1, 2, 3, 4]);
});

test('a randomized arrival order always yields one contiguous stream (seeded)', { timeout: 20_000 }, async (t) => {
  const seed = Number(process.env.DEVICE_STREAM_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (rerun with DEVICE_STREAM_SEED=${seed})`);
  let state = seed;
  const rand = (n: number): number => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state % n;
  };
  try {
    for (let round = 0; round < 30; round++) {
      const outlet = new FakeOutlet();
      const tl = new FakeTimeline();
      const { s } = stream(outlet, tl, { pageSize: 1 + rand(5) });
      const resume = rand(5);
      tl.append(...range(1, resume));
      await s.start(resume);
      const N = resume + 1 + rand(30);
      const order = range(resume + 1, N);
      // Shuffle, duplicate some, lose some (their gap must be read from storage).
      for (let i = order.length - 1; i > 0; i--) {
        const j = rand(i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      tl.append(...range(resume + 1, N));
      for (const pos of order) {
        const r = rand(10);
        if (r === 0) continue; // lost on the bus
        s.offer(pos, frameAt(pos));
        if (r === 1) s.offer(pos, frameAt(pos));
        if (r === 2) await settle();
      }
      s.catchUp(); // the bus says frames were lost
      await outlet.until(() => outlet.sent.length > 0 && posOf(outlet.sent.at(-1)!) === N);
      await settle();
      assert.deepEqual(outlet.positions(), range(resume + 1, N), `round ${round}`);
      assert.deepEqual(outlet.sent, range(resume + 1, N).map(frameAt));
    }
  } catch (err) {
    console.error(`device-stream randomized test failed with seed ${seed} (DEVICE_STREAM_SEED=${seed})`);
    throw err;
  }
});

test('nothing pending (resume point = last position): no storage read, live frames flow, held ones first', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2, 3);
  const { s } = stream(outlet, tl);
  tl.append(4);
  s.offer(4, frameAt(4)); // committed after the resume point was read: held until start
  await s.start(3, 3);
  assert.deepEqual(outlet.positions(), [4]);
  assert.equal(tl.reads.length, 0, 'the first read is skipped');
  tl.append(5);
  s.offer(5, frameAt(5));
  assert.deepEqual(outlet.positions(), [4, 5]);
  assert.equal(tl.reads.length, 0);
});

test('nothing pending, but a held frame leaves a gap: the gap is read from storage', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2, 3);
  const { s } = stream(outlet, tl);
  tl.append(4, 5);
  s.offer(5, frameAt(5)); // 4 was lost on the bus
  await s.start(3, 3);
  await settle();
  assert.deepEqual(outlet.positions(), [4, 5]);
  assert.equal(tl.reads.length, 1);
});

test('a resume point behind the last position still replays', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2, 3);
  const { s } = stream(outlet, tl);
  await s.start(1, 3);
  assert.deepEqual(outlet.positions(), [2, 3]);
  assert.equal(tl.reads.length, 1);
});

test('a hole inside storage (retention removed a middle position): timeline_pruned, then the rest, no re-read loop', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  // Position 4's event was older (by id) than 5's: pruned by id, it left a hole after 3.
  tl.append(1, 2, 3, 5, 6);
  const { s } = stream(outlet, tl, { pageSize: 3 });
  await s.start(0);
  assert.deepEqual(outlet.positions(), [1, 2, 3, -1, 5, 6]);
  assert.deepEqual(JSON.parse(outlet.sent[3]!), { type: 'timeline_pruned', after: 3, firstPos: 5 });
  assert.equal(s.lastPos, 6);
  assert.ok(tl.reads.length <= 3, `pages read once each (${tl.reads.length})`);
});

test('catchUp while the resume point is read (before start): start reads storage even when it says nothing is pending', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2, 3);
  const { s } = stream(outlet, tl);
  // The resume point read says 3; meanwhile 4 is committed and its bus frame lost, then the bus resyncs.
  tl.append(4);
  s.catchUp();
  await s.start(3, 3);
  await outlet.count(1);
  assert.deepEqual(outlet.positions(), [4]);
});

test('after a read gave up, the next in-order live frame retries the gap before frames held beyond it', () => keepingAlive(async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  const { s, gaveUp } = stream(outlet, tl);
  await s.start(0);
  tl.append(1, 2, 3, 4, 5);
  tl.failNext = 3;
  s.offer(3, frameAt(3));
  s.offer(5, frameAt(5));
  await gaveUp;
  await settle();
  assert.deepEqual(outlet.positions(), []);
  s.offer(1, frameAt(1));
  await outlet.count(5);
  assert.deepEqual(outlet.positions(), [1, 2, 3, 4, 5]);
}));

test("rows a page reads but leaves out (a former member's): the hole is reported and the replay goes on past a full page", async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2, 3, 4, 5, 6, 7);
  tl.hidden = new Set([3, 6]); // 3 ends the first page of 3 rows; 6 is in the middle of the next
  const { s } = stream(outlet, tl, { pageSize: 3 });
  await s.start(0);
  assert.deepEqual(outlet.positions(), [1, 2, -1, 4, 5, -1, 7], 'everything readable, in order, across pages, each hole reported where it is (-1)');
  const pruned = outlet.sent.filter((f) => f.includes('timeline_pruned')).map((f) => JSON.parse(f) as { after: number; firstPos: number });
  assert.deepEqual(pruned, [{ type: 'timeline_pruned', after: 2, firstPos: 4 }, { type: 'timeline_pruned', after: 5, firstPos: 7 }]);
  assert.equal(s.lastPos, 7);
});

test('live frames held during a replay go out paced after it, not all at once, and later ones queue behind them', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1);
  const { s } = stream(outlet, tl, { drainBelow: 100_000 });
  tl.hold();
  const started = s.start(0);
  // Live frames 2–5 arrive while the replay's read is out: held.
  for (const pos of [2, 3, 4, 5]) {
    tl.append(pos);
    s.offer(pos, frameAt(pos));
  }
  assert.deepEqual(outlet.positions(), []);
  outlet.buffered = 200_000; // the client is behind: the socket holds unsent bytes
  tl.release();
  await outlet.count(1);
  await settle();
  assert.deepEqual(outlet.positions(), [1], 'the replay itself waits first');
  outlet.drainWaits.shift()!.resolve();
  await outlet.count(2);
  await settle();
  assert.deepEqual(outlet.positions(), [1, 2], 'then one held frame, and a wait again');
  assert.equal(outlet.drainWaits.length, 1);
  // A frame arriving during the wait is held behind the others.
  tl.append(6);
  s.offer(6, frameAt(6));
  assert.deepEqual(outlet.positions(), [1, 2]);
  outlet.buffered = 0;
  outlet.drainWaits.shift()!.resolve();
  await started;
  assert.deepEqual(outlet.positions(), [1, 2, 3, 4, 5, 6]);
  // Live again: the next frame goes straight out.
  tl.append(7);
  s.offer(7, frameAt(7));
  assert.deepEqual(outlet.positions(), [1, 2, 3, 4, 5, 6, 7]);
});

test('after a gap read gave up, held frames that continue the stream go out paced, not all at once', () => keepingAlive(async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  const { s, gaveUp } = stream(outlet, tl, { drainBelow: 100_000 });
  await s.start(0, 0);
  tl.append(1, 2, 3, 4, 5);
  tl.failNext = 3;
  for (const pos of [2, 3, 4, 5]) s.offer(pos, frameAt(pos)); // 1 is late on the bus: a gap, and its read fails
  s.offer(1, frameAt(1)); // the late frame arrives while storage is still away: held with the rest
  outlet.buffered = 200_000; // the client is behind
  await gaveUp;
  await settle();
  assert.deepEqual(outlet.positions(), [1], 'one frame, then a wait for the socket');
  assert.equal(outlet.drainWaits.length, 1);
  outlet.buffered = 0;
  outlet.drainWaits.shift()!.resolve();
  await outlet.count(5);
  assert.deepEqual(outlet.positions(), [1, 2, 3, 4, 5]);
}));

test('nothing pending, many frames held before start: they go out paced too', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  const { s } = stream(outlet, tl, { drainBelow: 100_000 });
  tl.append(1, 2, 3);
  for (const pos of [1, 2, 3]) s.offer(pos, frameAt(pos)); // committed after the resume point (0) was read
  outlet.buffered = 200_000;
  const started = s.start(0, 0);
  await settle();
  assert.deepEqual(outlet.positions(), [1]);
  outlet.buffered = 0;
  outlet.drainWaits.shift()!.resolve();
  await started;
  assert.deepEqual(outlet.positions(), [1, 2, 3]);
  assert.equal(tl.reads.length, 0, 'no storage read');
});

test('the held bound counts UTF-8 bytes, as the socket does (three-byte characters)', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  const wide = (pos: number): string => timelineFrame(pos, eventBody({ ...message(pos), content: '漢'.repeat(1500) }));
  // Each frame: ~1,600 UTF-16 units but ~4,600 bytes. Three of them pass 10,000 bytes, not 10,000 units.
  const { s, calls } = stream(outlet, tl, { maxHeldBytes: 10_000 });
  tl.hold();
  void s.start(0);
  for (const pos of [1, 2]) s.offer(pos, wide(pos));
  assert.equal(calls.overflow, 0);
  s.offer(3, wide(3));
  assert.equal(calls.overflow, 1);
  tl.release();
});

test("a session's own message_sent held before start, at or below its resume point, still goes out", async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(1, 2, 3, 4, 5);
  const { s } = stream(outlet, tl);
  s.offer(5, sentAt(5), true); // answered before the stream started; another device then acked 5
  await s.start(5, 5);
  await settle();
  assert.deepEqual(outlet.sent, [sentAt(5)], 'the client waits for it; a copy of an event at or below the position would be dropped');
});

test('pageBytes: a replay reads a small first page, then as many entries as fit at the frame size seen (a stalled replay cannot pin a whole page of large frames)', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(...range(1, 200));
  const size = frameAt(1).length;
  const { s } = stream(outlet, tl, { pageSize: 100, pageBytes: size * 40 });
  s.start(0, 200);
  await outlet.count(200);
  const limits = tl.reads.map((r) => r.limit);
  assert.equal(limits[0], 16, 'the first page, before any frame size is known');
  assert.ok(limits.slice(1).every((l) => l >= 38 && l <= 40), JSON.stringify(limits));
  assert.deepEqual(outlet.positions(), range(1, 200));
  // Without pageBytes the count alone decides.
  const tl2 = new FakeTimeline();
  tl2.append(...range(1, 150));
  const outlet2 = new FakeOutlet();
  stream(outlet2, tl2, { pageSize: 100 }).s.start(0, 150);
  await outlet2.count(150);
  assert.deepEqual(tl2.reads.map((r) => r.limit), [100, 100]);
});

test('a replay that finds the socket full in a page far larger than its estimate lets the rest go while it waits, then reads on from the last position sent', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(...range(1, 10));
  // pageBytes far below ten frames: the first page (read before any frame size was known) is oversized.
  const { s } = stream(outlet, tl, { pageSize: 10, pageBytes: frameAt(1).length * 2, drainBelow: 100_000 });
  outlet.buffered = 200_000; // a client that stopped reading
  const started = s.start(0, 10);
  await outlet.count(1);
  await settle();
  assert.deepEqual({ sent: outlet.positions(), waits: outlet.drainWaits.length }, { sent: [1], waits: 1 });
  outlet.buffered = 0;
  outlet.drainWaits.shift()!.resolve();
  await started;
  assert.deepEqual(outlet.positions(), range(1, 10));
  assert.deepEqual(tl.reads.slice(0, 2).map((r) => r.after), [0, 1], 'read again after the wait, from the last position sent');
  assert.deepEqual([...new Set(tl.reads.slice(1).map((r) => r.limit))], [2], 'in pages that fit pageBytes');
});

test('a slow reader (the socket full again after every frame) keeps a page of about its estimated size across the waits: one storage read per page', async () => {
  const outlet = new FakeOutlet();
  const tl = new FakeTimeline();
  tl.append(...range(1, 300));
  const { s } = stream(outlet, tl, { pageSize: 100, pageBytes: frameAt(1).length * 100, drainBelow: 100_000 });
  outlet.buffered = 200_000;
  let done = false;
  const started = s.start(0, 300).then(() => (done = true));
  for (let guard = 0; !done && guard < 1000; guard++) {
    await settle();
    while (outlet.drainWaits.length > 0) outlet.drainWaits.shift()!.resolve();
  }
  await started;
  assert.deepEqual(outlet.positions(), range(1, 300), 'every event once, in order');
  assert.ok(tl.reads.length <= 6, `300 entries at up to 100 a page took ${tl.reads.length} storage reads`);
});
