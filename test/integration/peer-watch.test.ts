/**
 * Cluster membership on real Redis (src/bus/peer-watch.ts): a node that vanished without a clean
 * shutdown may have committed frames it never published, so its lapse makes every node resync —
 * announced exactly once, by whichever node notices; a clean leave and a node's own stall
 * announce nothing.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { PeerWatch } from '../../src/bus/peer-watch.js';
import { RedisBus } from '../../src/bus/redis-bus.js';
import { REDIS_URL, dropRedisPrefix, uniqueRedisPrefix } from '../helpers/harness.js';

/** Long enough that the watches' own timers never run during a test: the tests call refresh(). */
const MANUAL_MS = 600_000;
const WAIT_MS = 10_000;

const clients: Redis[] = [];
const watches: PeerWatch[] = [];
const buses: RedisBus[] = [];
const prefixes: string[] = [];

after(async () => {
  for (const w of watches) w.stop();
  await Promise.all(buses.map((b) => b.close()));
  for (const c of clients) c.disconnect();
  for (const p of prefixes) {
    const admin = new Redis(REDIS_URL, { lazyConnect: true });
    await admin.connect();
    await dropRedisPrefix(admin, p); // quits it
  }
});

async function client(): Promise<Redis> {
  const c = new Redis(REDIS_URL, { lazyConnect: true });
  clients.push(c);
  await c.connect();
  return c;
}

/** A fresh namespace, a raw client, and a subscriber counting resync announcements. */
async function cluster(): Promise<{ prefix: string; key: string; channel: string; raw: Redis; announcements: () => number; announced: () => Promise<void> }> {
  const prefix = uniqueRedisPrefix('peers');
  prefixes.push(prefix);
  const key = `${prefix}ctl:nodes`;
  const channel = `${prefix}ctl:resync`;
  const raw = await client();
  const sub = await client();
  let count = 0;
  let waiting: (() => void) | undefined;
  sub.on('message', (ch: string) => {
    if (ch !== channel) return;
    count++;
    waiting?.();
  });
  await sub.subscribe(channel);
  return {
    prefix,
    key,
    channel,
    raw,
    announcements: () => count,
    announced: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no resync announced')), WAIT_MS);
        waiting = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
  };
}

async function watch(c: { key: string; channel: string }, nodeId: string, lapsed: number[] = [], removed: string[] = []): Promise<PeerWatch> {
  const w = new PeerWatch({
    client: await client(),
    key: c.key,
    nodeId,
    resyncChannel: c.channel,
    livenessMs: MANUAL_MS,
    onLapsed: (n, nodes) => {
      lapsed.push(n);
      removed.push(...nodes);
    },
    onError: (err) => assert.fail(err),
  });
  watches.push(w);
  return w;
}

test('a lapsed member is swept by exactly one node, which announces one resync', async () => {
  const c = await cluster();
  const lapsedB: number[] = [];
  const lapsedC: number[] = [];
  const removedB: string[] = [];
  const b = await watch(c, 'node-b', lapsedB, removedB);
  const cc = await watch(c, 'node-c', lapsedC);
  await b.refresh();
  await cc.refresh();
  assert.equal(c.announcements(), 0, 'live members announce nothing');
  // A node that joined and was killed: its membership lapsed long ago.
  await c.raw.zadd(c.key, 1, 'node-killed');
  const announced = c.announced();
  await b.refresh();
  await announced;
  await cc.refresh();
  // The PUBLISH ran inside B's script, so it has reached our subscriber before C's reply did… but
  // give the subscriber connection a round trip to be sure nothing else is on its way.
  await c.raw.publish(`${c.prefix}fence`, '1');
  assert.deepEqual(lapsedB, [1]);
  assert.deepEqual(removedB, ['node-killed'], 'the node that removed it is told which (its leftovers are its to clean)');
  assert.deepEqual(lapsedC, [], 'the second node finds nothing left to sweep');
  assert.equal(c.announcements(), 1);
  assert.equal(await c.raw.zscore(c.key, 'node-killed'), null);
  assert.notEqual(await c.raw.zscore(c.key, 'node-b'), null);
  assert.notEqual(await c.raw.zscore(c.key, 'node-c'), null);
});

test('a clean leave removes the member and nobody resyncs for it; a node\'s own stall is not a death', async () => {
  const c = await cluster();
  const lapsed: number[] = [];
  const a = await watch(c, 'node-a');
  const b = await watch(c, 'node-b', lapsed);
  await a.refresh();
  await b.refresh();
  await a.leave();
  assert.equal(await c.raw.zscore(c.key, 'node-a'), null);
  // B itself stalled past its own lapse: it is running again and publishes what it commits.
  await c.raw.zadd(c.key, 1, 'node-b');
  await b.refresh();
  assert.deepEqual(lapsed, []);
  assert.ok(Number(await c.raw.zscore(c.key, 'node-b')) > 1, 'its membership is renewed');
  await c.raw.publish(`${c.prefix}fence`, '1');
  assert.equal(c.announcements(), 0);
});

test('a node restarted under the same nodeId before its lapse was noticed announces the resync itself', async () => {
  const c = await cluster();
  const lapsed: number[] = [];
  // The previous life joined and was killed: its member is still there, not yet lapsed.
  await c.raw.zadd(c.key, Date.now() + MANUAL_MS, 'node-a');
  const announced = c.announced();
  const again = await watch(c, 'node-a', lapsed);
  await again.refresh();
  await announced;
  assert.deepEqual(lapsed, [1]);
  await again.refresh(); // running now: nothing more to announce
  await c.raw.publish(`${c.prefix}fence`, '1');
  assert.deepEqual(lapsed, [1]);
  assert.equal(c.announcements(), 1);
});

test('a RedisBus joins on connect, resyncs when a peer lapses (its own timer), and leaves on close', async () => {
  const c = await cluster();
  const lost: number[] = [];
  const bus = await RedisBus.connect({ redisUrl: REDIS_URL, channelPrefix: c.prefix, nodeId: 'node-b', peerLivenessMs: 300, onPeersLost: (n) => lost.push(n) });
  buses.push(bus);
  assert.notEqual(await c.raw.zscore(c.key, 'node-b'), null, 'a member as soon as connect resolves');
  const resynced = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the bus did not resync')), WAIT_MS);
    bus.onResync(() => {
      clearTimeout(timer);
      resolve();
    });
  });
  await c.raw.zadd(c.key, 1, 'node-killed');
  await resynced;
  assert.deepEqual(lost, [1]);
  await bus.close();
  assert.equal(await c.raw.zscore(c.key, 'node-b'), null, 'a clean close leaves');
});

test('without peerLivenessMs a bus takes no part in the membership', async () => {
  const c = await cluster();
  const bus = await RedisBus.connect({ redisUrl: REDIS_URL, channelPrefix: c.prefix, nodeId: 'node-x' });
  buses.push(bus);
  assert.equal(await c.raw.exists(c.key), 0);
});
