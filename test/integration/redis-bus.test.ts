import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Bus } from '../../src/bus/bus.js';
import { RedisBus, type BusErrorSource, type RedisBusOptions } from '../../src/bus/redis-bus.js';
import { openBus } from '../../src/bus/open-bus.js';
import { LocalBus } from '../../src/bus/local-bus.js';
import { startRedisProxy, within } from '../helpers/harness.js';

const REDIS_URL = process.env.RAMPART_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Unique per run, so parallel runs and leftovers never cross-talk. */
const RUN_PREFIX = `rampart-test:${process.pid}:${randomUUID()}:`;
/** Safety net against hangs only; every wait below resolves on an event, not a timer. */
const WAIT_MS = 10_000;

const open: Array<{ close(): Promise<void> }> = [];
after(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()));
});

let testNo = 0;
/** Two buses (= two nodes) on one fresh channel prefix. */
async function nodes(
  extraA: Partial<RedisBusOptions> = {},
  extraB: Partial<RedisBusOptions> = {},
): Promise<{ a: RedisBus; b: RedisBus; prefix: string }> {
  const prefix = `${RUN_PREFIX}${testNo++}:`;
  const a = await RedisBus.connect({ redisUrl: REDIS_URL, channelPrefix: prefix, nodeId: 'node-a', ...extraA });
  open.push(a);
  const b = await RedisBus.connect({ redisUrl: REDIS_URL, channelPrefix: prefix, nodeId: 'node-b', ...extraB });
  open.push(b);
  return { a, b, prefix };
}

/** Records what a node's handler receives and resolves waits when a condition becomes true. */
class Inbox {
  readonly frames: Array<[string, string]> = [];
  private waiters: Array<{ ok: () => boolean; resolve: () => void }> = [];

  constructor(bus: Bus) {
    bus.onFrame((userId, frame) => {
      this.frames.push([userId, frame]);
      this.waiters = this.waiters.filter((w) => (w.ok() ? (w.resolve(), false) : true));
    });
  }

  of(userId: string): string[] {
    return this.frames.filter(([u]) => u === userId).map(([, f]) => f);
  }

  /** Resolves when `frame` has arrived for `userId`. */
  got(userId: string, frame: string): Promise<void> {
    return this.until(() => this.of(userId).includes(frame), `${frame} for ${userId}`);
  }

  until(ok: () => boolean, what: string): Promise<void> {
    if (ok()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
      timer.unref();
      this.waiters.push({ ok, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }
}

/**
 * Publishes probes until one arrives: the only way to observe "the subscription is live again"
 * from outside after a reconnect. Each probe is a distinct frame; returns once one arrived.
 */
async function probeUntilDelivered(from: Bus, to: Inbox, userId: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (let i = 0; ; i++) {
    const frame = `probe-${i}`;
    from.publish(userId, frame);
    const arrived = to.got(userId, frame).then(() => true);
    const gaveUp = new Promise<false>((r) => setTimeout(r, 50, false).unref());
    if (await Promise.race([arrived, gaveUp])) return;
    if (Date.now() > deadline) throw new Error(`no probe reached ${userId}`);
  }
}

test('a frame published on node A reaches a user subscribed on node B exactly once', async () => {
  const { a, b } = await nodes();
  const inA = new Inbox(a);
  const inB = new Inbox(b);
  b.subscribe('bob');
  b.subscribe('marker');
  await b.subscriptionsSettled();

  a.publish('bob', '{"type":"chat_message","content":"hi\\nthere"}');
  a.publish('marker', 'm'); // same publisher connection: arrives after the frame above
  await inB.got('marker', 'm');

  assert.deepEqual(inB.of('bob'), ['{"type":"chat_message","content":"hi\\nthere"}']);
  assert.deepEqual(inA.frames, [], 'A has no local session of bob');
  assert.equal(b.stats().received, 2);
  await a.close(); // QUIT is answered after every PUBLISH, so the counts are final
  assert.equal(a.stats().published, 2);
});

test('subscribed(user) resolves once Redis confirmed the subscription: a frame published right after reaches the node', async () => {
  const { a, b } = await nodes();
  const inB = new Inbox(b);
  assert.equal(b.subscribed('carol'), undefined, 'not subscribed: nothing to wait for');
  b.subscribe('carol');
  const confirming = b.subscribed('carol');
  assert.ok(confirming instanceof Promise, 'a subscription Redis has not confirmed yet is waited for');
  assert.equal(b.subscribed('carol'), confirming, 'every session of the user waits for the same confirmation');
  await confirming;
  assert.equal(b.subscribed('carol'), undefined, 'confirmed: no wait');
  // Published by another node the moment the wait is over (no settling of anything else): it arrives.
  a.publish('carol', 'right after');
  await inB.got('carol', 'right after');
  // An unsubscribe while unconfirmed drops the wait.
  b.subscribe('dave');
  b.unsubscribe('dave');
  assert.equal(b.subscribed('dave'), undefined);
  assert.equal(new LocalBus().subscribed('x'), undefined, 'in-process: always holds at once');
});

test('a wait for a confirmation ends when the subscriber connection drops (the resync covers it), and is skipped while it is down', async () => {
  const proxy = await startRedisProxy(REDIS_URL);
  try {
    const { b } = await nodes({}, { redisUrl: proxy.url, onError: () => {} });
    proxy.freeze(); // the SUBSCRIBE below goes out and is never answered
    b.subscribe('pat');
    const waiting = b.subscribed('pat');
    assert.ok(waiting instanceof Promise);
    let released = false;
    void waiting.then(() => (released = true));
    await proxy.stop(); // the subscriber connection drops
    await waiting;
    assert.equal(released, true);
    b.subscribe('quinn');
    assert.equal(b.subscribed('quinn'), undefined, 'the subscriber is down: nothing to wait for');
    await proxy.start();
  } finally {
    await proxy.close();
  }
});

test('a user subscribed on both nodes gets the frame once on each, the publisher included', async () => {
  const { a, b } = await nodes();
  const inA = new Inbox(a);
  const inB = new Inbox(b);
  a.subscribe('carol');
  b.subscribe('carol');
  await Promise.all([a.subscriptionsSettled(), b.subscriptionsSettled()]);

  a.publish('carol', 'f1');
  assert.deepEqual(inA.of('carol'), ['f1'], 'local delivery is synchronous');
  await inB.got('carol', 'f1');
  // Once B has f1, Redis has executed A's PUBLISH, so A's echo is already queued to A's
  // subscriber; B's marker is published after it and therefore reaches A after the echo.
  b.publish('carol', 'marker');
  await inA.got('carol', 'marker');

  assert.deepEqual(inA.of('carol'), ['f1', 'marker'], 'A ignored its own echo');
  assert.deepEqual(inB.of('carol'), ['f1', 'marker'], 'B: remote once, then its own local delivery');
});

test('users without a subscription on a node receive nothing there', async () => {
  const { a, b } = await nodes();
  const inB = new Inbox(b);
  b.subscribe('dave');
  b.subscribe('erin');
  b.unsubscribe('erin');
  b.subscribe('marker');
  await b.subscriptionsSettled();

  a.publish('erin', 'unsubscribed');
  a.publish('frank', 'never-subscribed');
  a.publish('marker', 'm');
  await inB.got('marker', 'm');

  assert.deepEqual(inB.frames, [['marker', 'm']]);
  assert.equal(b.stats().dropped, 0, 'Redis did not even send them: the channel was unsubscribed');
});

test('1,000 frames published in one turn arrive in order, once each, in one batch', async () => {
  const { a, b } = await nodes();
  const inA = new Inbox(a);
  const inB = new Inbox(b);
  a.subscribe('gina');
  b.subscribe('gina');
  await Promise.all([a.subscriptionsSettled(), b.subscriptionsSettled()]);

  const sent = Array.from({ length: 1000 }, (_, i) => `{"n":${i}}`);
  for (const f of sent) a.publish('gina', f);
  await inB.until(() => inB.frames.length >= 1000, '1000 frames on B');

  assert.deepEqual(inB.of('gina'), sent);
  assert.deepEqual(inA.of('gina'), sent);
  await a.close();
  assert.equal(a.stats().published, 1000);
});

test('bursts larger than one pipeline keep their order', async () => {
  const { a, b } = await nodes();
  const inB = new Inbox(b);
  b.subscribe('hal');
  await b.subscriptionsSettled();

  const sent = Array.from({ length: 5000 }, (_, i) => String(i));
  for (const f of sent) a.publish('hal', f);
  await inB.until(() => inB.frames.length >= 5000, '5000 frames on B');
  assert.deepEqual(inB.of('hal'), sent);
});

test('frames flow again after the subscriber connection is killed', async () => {
  const { a, b, prefix } = await nodes();
  const inB = new Inbox(b);
  b.subscribe('ivan');
  await b.subscriptionsSettled();
  a.publish('ivan', 'before');
  await inB.got('ivan', 'before');

  const admin = new Redis(REDIS_URL);
  try {
    const subName = `rampart:${prefix}node-b:sub`;
    const idBefore = await clientId(admin, subName);
    assert.equal(await admin.client('KILL', 'ID', idBefore), 1);
    b.subscribe('judy'); // issued while the connection is down or dying: must apply on reconnect

    await probeUntilDelivered(a, inB, 'ivan');
    await probeUntilDelivered(a, inB, 'judy');
    assert.notEqual(await clientId(admin, subName), idBefore, 'B reconnected on a new connection');

    const sent = Array.from({ length: 100 }, (_, i) => `after-${i}`);
    for (const f of sent) a.publish('ivan', f);
    await inB.got('ivan', 'after-99');
    assert.deepEqual(
      inB.of('ivan').filter((f) => f.startsWith('after-')),
      sent,
    );
  } finally {
    await admin.quit();
  }
});

test('a handler that throws on remote delivery is reported and does not stop the bus', async () => {
  const errors: Array<[string, BusErrorSource]> = [];
  const { a, b } = await nodes({}, { onError: (err, source) => errors.push([err.message, source]) });
  const seen: string[] = [];
  let delivered!: () => void;
  const ok = new Promise<void>((r) => (delivered = r));
  b.onFrame((_u, frame) => {
    if (frame === 'boom') throw new Error('handler bug');
    seen.push(frame);
    delivered();
  });
  b.subscribe('kim');
  await b.subscriptionsSettled();
  a.publish('kim', 'boom');
  a.publish('kim', 'fine');
  await ok;
  assert.deepEqual(seen, ['fine']);
  assert.deepEqual(errors, [['handler bug', 'deliver']]);
});

test('openBus rejects with a clear error when Redis is unreachable, and leaves nothing open', async () => {
  // "within 300 ms" is written only by the connectTimeoutMs timer: each rejection came from the
  // configured timeout, not from ioredis' own (longer) connect timeout or retries; and giving up
  // (closing what the attempt opened) ends promptly after it, bounded by that timeout and a margin.
  const givenUp = (attempt: Promise<unknown>): Promise<unknown> => within(attempt, 300 + 1000, 'a failed open given up promptly');
  await givenUp(assert.rejects(
    openBus({ redisUrl: 'redis://:hunter2@127.0.0.1:1', channelPrefix: RUN_PREFIX, nodeId: 'n', connectTimeoutMs: 300 }),
    (err: Error) => {
      assert.match(err.message, /redisUrl redis:\/\/\*\*\*@127\.0\.0\.1:1\)/);
      assert.match(err.message, /within 300 ms/);
      assert.match(err.message, /ECONNREFUSED/);
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    },
  ));
  // ioredis also takes the password from the query string: it must not show either.
  await givenUp(assert.rejects(
    openBus({ redisUrl: 'redis://127.0.0.1:1/?password=hunter3&db=2', channelPrefix: RUN_PREFIX, nodeId: 'n', connectTimeoutMs: 300 }),
    (err: Error) => {
      assert.match(err.message, /redisUrl redis:\/\/127\.0\.0\.1:1\)/);
      assert.match(err.message, /within 300 ms/);
      assert.doesNotMatch(err.message, /hunter3/);
      return true;
    },
  ));
  await assert.rejects(
    openBus({ redisUrl: 'localhost:6379', channelPrefix: RUN_PREFIX, nodeId: 'n' }),
    /redisUrl must be a redis:\/\/ or rediss:\/\/ URL/,
  );
  // The test process exiting on its own (no reconnect timers left) is the rest of this check.
});

test('openBus with redisUrl returns a connected RedisBus', async () => {
  const bus = await openBus({ redisUrl: REDIS_URL, channelPrefix: `${RUN_PREFIX}open:`, nodeId: 'n' });
  open.push(bus);
  assert.ok(bus instanceof RedisBus);
  const inbox = new Inbox(bus);
  bus.subscribe('lee');
  bus.publish('lee', 'local');
  assert.deepEqual(inbox.of('lee'), ['local']);
});

test('publishing while Redis is unreachable never throws, counts failures, and recovers', async () => {
  const proxy = await startRedisProxy(REDIS_URL);
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  const errors: BusErrorSource[] = [];
  let publishFailed!: () => void;
  const failed = new Promise<void>((r) => (publishFailed = r));
  try {
    const { a, b } = await nodes({
      redisUrl: proxy.url,
      onError: (_err, source) => {
        errors.push(source);
        if (source === 'publish') publishFailed();
      },
    });
    const inA = new Inbox(a);
    const inB = new Inbox(b);
    a.subscribe('mia');
    b.subscribe('mia');
    await Promise.all([a.subscriptionsSettled(), b.subscriptionsSettled()]);

    await proxy.stop(); // both of A's connections drop; reconnects are refused
    for (let i = 0; i < 10; i++) assert.doesNotThrow(() => a.publish('mia', `down-${i}`));
    assert.equal(inA.of('mia').length, 10, 'local sessions are still served while Redis is down');
    await failed;
    assert.ok(a.stats().publishFailures >= 10);
    assert.ok(errors.includes('connection'), 'the outage itself was reported');
    assert.equal(errors.filter((s) => s === 'publish').length, 1, 'one report per failed batch');

    await proxy.start(); // Redis is back: A reconnects, resubscribes, publishes again
    await probeUntilDelivered(a, inB, 'mia');
    await probeUntilDelivered(b, inA, 'mia');
    // Let any stray rejection surface before checking.
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await proxy.stop();
  }
});

async function clientId(admin: Redis, name: string): Promise<string> {
  const list = await admin.client('LIST');
  const line = String(list)
    .split('\n')
    .find((l) => l.includes(` name=${name} `));
  const id = line?.match(/\bid=(\d+)/)?.[1];
  assert.ok(id, `no client named ${name}`);
  return id;
}


/** Counts a bus's `onResync` calls; `next()` resolves on the next one. */
class Resyncs {
  count = 0;
  private waiters: (() => void)[] = [];
  constructor(bus: Bus, private readonly onCall: () => void = () => {}) {
    bus.onResync(() => {
      this.count++;
      this.onCall();
      for (const w of this.waiters.splice(0)) w();
    });
  }
  next(what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
      timer.unref();
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

test('no onResync while nothing is lost', async () => {
  const { a, b } = await nodes();
  const ra = new Resyncs(a);
  const rb = new Resyncs(b);
  const inB = new Inbox(b);
  b.subscribe('quinn');
  await b.subscriptionsSettled();
  for (let i = 0; i < 100; i++) a.publish('quinn', `{"pos":${i + 1}}`);
  await inB.got('quinn', '{"pos":100}');
  assert.deepEqual([ra.count, rb.count], [0, 0]);
});

test('onResync after the subscriber reconnects from an outage, once its channels are live again', async () => {
  const proxy = await startRedisProxy(REDIS_URL);
  const errors: BusErrorSource[] = [];
  let outage!: () => void;
  const down = new Promise<void>((r) => (outage = r));
  try {
    const { a, b } = await nodes({}, {
      redisUrl: proxy.url,
      onError: (_err, source) => {
        errors.push(source);
        if (source === 'connection') outage();
      },
    });
    const inB = new Inbox(b);
    // At the moment B resyncs, its subscriptions must already be live: a frame published from
    // the handler (as a session reading its gap and a new message racing it would) arrives.
    let published = 0;
    const rb = new Resyncs(b, () => a.publish('rita', `after-resync-${++published}`));
    const ra = new Resyncs(a);
    b.subscribe('rita');
    await b.subscriptionsSettled();
    a.publish('rita', 'before');
    await inB.got('rita', 'before');

    await proxy.stop();
    await down;
    a.publish('rita', 'lost while B was away'); // Redis accepts it, but B is not listening
    const resynced = rb.next('B to resync after reconnecting');
    await proxy.start();
    await resynced;
    await inB.got('rita', 'after-resync-1');
    assert.ok(rb.count >= 1);
    assert.equal(ra.count, 0, 'A never lost anything: no resync on A');
    assert.equal(inB.of('rita').includes('lost while B was away'), false, 'the frame published during the outage is gone: storage must fill it');
    assert.ok(errors.includes('connection'));
  } finally {
    await proxy.close();
  }
});

test('a failed publish: once Redis is back every node resyncs (the one that lost it announces it)', async () => {
  const proxy = await startRedisProxy(REDIS_URL);
  let publishFailed!: () => void;
  const failed = new Promise<void>((r) => (publishFailed = r));
  try {
    // A (the publisher that will lose frames) goes through the proxy; B is connected directly and
    // never disconnects, so a resync on B can only come from A's announcement.
    const { a, b } = await nodes({
      redisUrl: proxy.url,
      onError: (_err, source) => {
        if (source === 'publish') publishFailed();
      },
    });
    const rb = new Resyncs(b);
    const ra = new Resyncs(a);
    const inB = new Inbox(b);
    b.subscribe('sam');
    await b.subscriptionsSettled();

    await proxy.stop();
    a.publish('sam', '{"pos":1}'); // fails: the publisher connection is down
    await failed;
    assert.equal(rb.count, 0, 'nothing announced while Redis is unreachable');
    const bResynced = rb.next('B to resync on the announcement');
    const aResynced = ra.next('A to resync');
    await proxy.start();
    await Promise.all([bResynced, aResynced]);
    assert.ok(a.stats().publishFailures >= 1);
    assert.deepEqual(inB.of('sam'), [], 'the lost frame never arrives over the bus');
    // Publishing works again afterwards.
    await probeUntilDelivered(a, inB, 'sam');
  } finally {
    await proxy.close();
  }
});

test('a throwing onResync handler is reported, not thrown into the Redis client', async () => {
  const proxy = await startRedisProxy(REDIS_URL);
  const errors: [string, BusErrorSource][] = [];
  let outage!: () => void;
  const down = new Promise<void>((r) => (outage = r));
  let reported!: () => void;
  const deliverReported = new Promise<void>((r) => (reported = r));
  try {
    const { a, b } = await nodes({}, {
      redisUrl: proxy.url,
      onError: (err, source) => {
        errors.push([err.message, source]);
        if (source === 'connection') outage();
        if (source === 'deliver') reported();
      },
    });
    b.onResync(() => {
      throw new Error('resync bug');
    });
    const inB = new Inbox(b);
    b.subscribe('tom');
    await b.subscriptionsSettled();
    await proxy.stop();
    await down;
    await proxy.start();
    await deliverReported;
    assert.ok(errors.some(([m, s]) => m === 'resync bug' && s === 'deliver'));
    await probeUntilDelivered(a, inB, 'tom');
  } finally {
    await proxy.close();
  }
});
