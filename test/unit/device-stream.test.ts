/**
 * DeviceStream (src/sync/device-stream.ts) with a fake outlet and an in-memory timeline: one
 * strictly increasing, contiguous `pos` stream per session, whatever order live frames arrive in.
 * The fake reader answers in microtasks (or when a test releases it), so every wait below is on
 * an event, never on time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceStream, type DeviceStreamOptions } from '../../src/sync/device-stream.js';
import type { PacedOutlet } from '../../src/sync/paced-send.js';
import type { StoredMessage, TimelineEntry, TimelinePage } from '../../src/store/store.js';
import { eventBody, framePos, timelineFrame } from '../../src/chat/timeline-frames.js';

const ALICE = '6f1c0c52-4a4e-4a59-9b7e-2f4f8a3f6a10';
const BOB = '0b8a3b1e-6d7c-4f2a-8e1b-3c4d5e6f7a8b';
const CONV = '11111111-2222-4333-8444-555555555555';

function message(n: number): StoredMessage {
  return {
    kind: 'message',
    id: `00000000-0000-7000-8000-${String(n).padStart(12, '0')}`,
    tenantId: 'default',
    conversationId: CONV,
    conversationKind: 'direct',
    seq: n,
    senderId: BOB,
    recipientId: ALICE,
    content: `message ${n}`,
    mentions: [],
    hashtags: [],
    links: [],
    timestamp: 1_700_000_000_000 + n,
  };
}

/** The frame storage yields for `pos` (and the bus carries, unless a test says otherwise). */
const frameAt = (pos: number): string => timelineFrame(pos, eventBody(message(pos)));
/** The sending session's own `message_sent`, offered in place of its copy. */
const sentAt = (pos: number): string => JSON.stringify({ type: 'message_sent', id: message(pos).id, timestamp: 1, conversationId: CONV, seq: pos, pos });

/** Position of any frame the stream sent (timeline frames, message_sent, timeline_pruned → -1). */
function posOf(frame: string): number {
  const p = framePos(frame);
  if (p !== undefined) return p;
  const parsed = JSON.parse(frame) as { type: string; pos?: number };
  return parsed.type === 'message_sent' ? (parsed.pos as number) : -1;
}

class FakeOutlet implements PacedOutlet {
  readonly sent: string[] = [];
  isOpen = true;
  buffered = 0;
  drainWaits: { bytes: number; resolve: () => void }[] = [];
  private waiters: { ok: () => boolean; resolve: () => void }[] = [];

  send(frame: string): void {
    this.sent.push(frame);
    this.waiters = this.waiters.filter((w) => (w.ok() ? (w.resolve(), false) : true));
  }
  bufferedBytes(): number {
    return this.buffered;
  }
  waitForDrain(bytes: number): Promise<void> {
    return new Promise((resolve) => this.drainWaits.push({ bytes, resolve }));
  }
  /** Resolves once `n` frames were sent. */
  count(n: number): Promise<void> {
    return this.until(() => this.sent.length >= n);
  }
  until(ok: () => boolean): Promise<void> {
    if (ok()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ ok, resolve }));
  }
  positions(): number[] {
    return this.sent.map(posOf);
  }
}

/** A user's timeline in memory; reads can be made to fail or to wait for the test. */
class FakeTimeline {
  entries: TimelineEntry[] = [];
  /** Oldest retained position (retention). */
  firstPos = 1;
  reads: { after: number; limit: number }[] = [];
  failNext = 0;
  /** Positions the store reads but leaves out of a page (entries a former member may not read). */
  hidden = new Set<number>();
  private gate: { opened: Promise<void>; open: () => void } | undefined;
  private readStarted: (() => void)[] = [];

  append(...positions: number[]): void {
    for (const pos of positions) this.entries.push({ pos, event: message(pos) });
  }

  /** Reads started from now on wait until `release()`. */
  hold(): void {
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    this.gate = { opened, open };
  }
  release(): void {
    const gate = this.gate;
    this.gate = undefined;
    gate?.open();
  }
  /** Resolves when the next read starts (the snapshot it answers with is taken at that moment). */
  nextRead(): Promise<void> {
    return new Promise((resolve) => this.readStarted.push(resolve));
  }

  readonly read = async (after: number, limit: number): Promise<TimelinePage> => {
    this.reads.push({ after, limit });
    const started = this.readStarted.splice(0);
    const lastPos = this.entries.at(-1)?.pos ?? 0;
    const rows = this.entries.filter((e) => e.pos > after && e.pos >= this.firstPos).slice(0, limit);
    const page: TimelinePage = {
      entries: rows.filter((e) => !this.hidden.has(e.pos)),
      firstPos: this.entries.some((e) => e.pos >= this.firstPos) ? this.firstPos : lastPos + 1,
      lastPos,
    };
    if (page.entries.length < rows.length) page.scanned = { count: rows.length, toPos: rows.at(-1)!.pos };
    const fail = this.failNext > 0;
    if (fail) this.failNext--;
    for (const s of started) s();
    if (this.gate) await this.gate.opened;
    if (fail) throw new Error('storage unavailable');
    return page;
  };
}

interface Calls {
  overflow: number;
  readFailed: number;
  giveUp: number;
}

function stream(outlet: FakeOutlet, timeline: FakeTimeline, opts: Partial<DeviceStreamOptions> = {}): { s: DeviceStream; calls: Calls; gaveUp: Promise<void> } {
  const calls: Calls = { overflow: 0, readFailed: 0, giveUp: 0 };
  let gaveUpResolve!: () => void;
  const gaveUp = new Promise<void>((r) => (gaveUpResolve = r));
  const s = new DeviceStream(outlet, timeline.read, {
    pageSize: 100,
    drainBelow: 0,
    maxHeldBytes: 1_000_000,
    readAttempts: 3,
    retryMs: 1,
    // Long: a test that wants the stream to retry by itself sets it.
    maxRetryMs: 3_600_000,
    onOverflow: () => calls.overflow++,
    onReadFailed: () => calls.readFailed++,
    onGiveUp: () => {
      calls.giveUp++;
      gaveUpResolve();
    },
    ...opts,
  });
  return { s, calls, gaveUp };
}

/** Lets every pending microtask and immediate run (the fake reader never uses timers). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/**
 * The stream's retry delay is an unref'd timer (it must not keep a server process alive); while a
 * test waits on it, a ref'd interval keeps the event loop running. Not a wait: cleared at the end.
 */
async function keepingAlive<T>(run: () => Promise<T>): Promise<T> {
  const alive = setInterval(() => {}, 1000);
  try {
    return await run();
  } finally {
    clearInterval(alive);
  }
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

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
