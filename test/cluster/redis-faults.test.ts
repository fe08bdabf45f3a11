/**
 * Redis failures that are not a clean disconnect, and what each must not cost:
 *  - a PUBLISH answered with an error (the connection stays up): every node still resyncs, also
 *    when the publishing node has nothing more to publish;
 *  - a path that dies silently (no FIN, no RST): the liveness PING notices it
 *    (`redisPingIntervalMs`, `redisPingTimeoutMs`, short here), the connection is dropped and
 *    remade, and what was sent meanwhile reaches the online session without a reconnect; a ban
 *    set meanwhile closes the session there;
 *  - an `end_session` aimed at a node that was cut from Redis when it passed closes the session
 *    once that node is back (it is kept in Redis, as bans are);
 *  - writes for one user from both nodes at once while one node's Redis path is cut and restored:
 *    both of the user's streams end contiguous and complete, without a reconnect.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Bus } from '../../src/bus/bus.js';
import { RedisBus, type BusErrorSource, type RedisBusOptions } from '../../src/bus/redis-bus.js';
import {
  REDIS_URL,
  closeAll,
  dropRedisPrefix,
  newUserId,
  startRedisProxy,
  startServer,
  uniqueRedisPrefix,
  waitFor,
  within,
  type TcpProxy,
  type TestClient,
  type TestServer,
} from '../helpers/harness.js';
import { postgresBackend } from '../helpers/storage-backends.js';
import { GENEROUS_BUDGETS, ask, assertContiguous, deviceClient, said, say, streamOf, waitEvent, type DeviceClient } from '../helpers/timeline.js';

/** Pauses that shape the cut scenario (not waits for a result). */
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Liveness settings that notice a dead path within a second. */
const FAST_PING = { intervalMs: 200, timeoutMs: 500 };
const FAST_PING_CONFIG = { redisPingIntervalMs: 200, redisPingTimeoutMs: 500 };

describe('Redis bus: faults that are not a disconnect', () => {
  const open: { close(): Promise<void> }[] = [];
  const proxies: TcpProxy[] = [];
  after(async () => {
    await Promise.all(open.splice(0).map((b) => b.close()));
    for (const p of proxies) await p.close();
  });

  async function nodes(a: Partial<RedisBusOptions> = {}, b: Partial<RedisBusOptions> = {}): Promise<{ a: RedisBus; b: RedisBus }> {
    const prefix = uniqueRedisPrefix('bus-faults');
    const busA = await RedisBus.connect({ redisUrl: REDIS_URL, channelPrefix: prefix, nodeId: 'node-a', ping: FAST_PING, ...a });
    open.push(busA);
    const busB = await RedisBus.connect({ redisUrl: REDIS_URL, channelPrefix: prefix, nodeId: 'node-b', ping: FAST_PING, ...b });
    open.push(busB);
    return { a: busA, b: busB };
  }

  function resyncs(bus: Bus): { count: number } {
    const c = { count: 0 };
    bus.onResync(() => c.count++);
    return c;
  }

  test('a PUBLISH answered with an error: every node resyncs, though the node publishes nothing more', async () => {
    const errors: BusErrorSource[] = [];
    const { a, b } = await nodes({ onError: (_err, source) => errors.push(source) });
    const [ra, rb] = [resyncs(a), resyncs(b)];
    b.subscribe('bob');
    await b.subscriptionsSettled();
    // The next batch of A's publisher is answered with an error reply (as BUSY or NOPERM would be).
    const pub = (a as unknown as { pub: { pipeline(): unknown } }).pub;
    const realPipeline = pub.pipeline.bind(pub);
    pub.pipeline = () => {
      const p = realPipeline() as { publish: (...args: unknown[]) => unknown; call: (...args: unknown[]) => unknown };
      p.publish = () => p.call('EVAL', 'return redis.error_reply("BUSY simulated")', '0');
      pub.pipeline = realPipeline; // this batch only
      return p;
    };
    a.publish('bob', '{"pos":1}');
    await waitFor(() => ra.count >= 1 && rb.count >= 1, 3000, 'both nodes to resync');
    assert.ok(errors.includes('publish'), 'the failed publish was reported');
    assert.ok(a.healthy() && b.healthy(), 'Redis stayed reachable');
  });

  test('a silently dead path: noticed, reported, unhealthy meanwhile; reconnected and resynced once the path is back', { timeout: 20_000 }, async () => {
    const proxy = await startRedisProxy(REDIS_URL);
    proxies.push(proxy);
    const errors: BusErrorSource[] = [];
    const { a } = await nodes({ redisUrl: proxy.url, onError: (_e, s) => errors.push(s) });
    const ra = resyncs(a);
    a.subscribe('ann');
    await a.subscriptionsSettled();
    proxy.freeze(); // both of A's connections lead nowhere now; new connections get through
    for (let i = 0; i < 100; i++) a.publish(`peer-${i % 10}`, 'x'.repeat(1000));
    await waitFor(() => errors.includes('connection'), 3000, 'the dead path to be reported');
    await waitFor(() => ra.count >= 1 && a.healthy(), 5000, 'A to reconnect and resync');
    const stats = a.stats();
    assert.equal(stats.published + stats.publishFailures, 100, 'every frame of the dead path was settled (published or counted lost), none left queued');
  });
});

describe('Two nodes, node 2 behind a cuttable proxy to Redis', () => {
  const backend = postgresBackend('redis_faults');
  const prefix = uniqueRedisPrefix('redis-faults');
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const ADMIN_TOKEN = randomBytes(24).toString('hex');
  const clients: TestClient[] = [];
  let proxy: TcpProxy;
  let n1: TestServer;
  let n2: TestServer;

  before(async () => {
    await backend.setup();
    await redis.connect();
    proxy = await startRedisProxy(REDIS_URL);
    const common = { storage: backend.allocate().storage, redisKeyPrefix: prefix, admin: { token: ADMIN_TOKEN }, ...FAST_PING_CONFIG, ...GENEROUS_BUDGETS };
    n1 = await startServer({ ...common, redisUrl: REDIS_URL }, { nodeId: 'faults-n1' });
    n2 = await startServer({ ...common, redisUrl: proxy.url }, { nodeId: 'faults-n2' });
  });

  after(async () => {
    await closeAll(...clients);
    await n1?.close();
    await proxy?.close(); // drops frozen sockets, so node 2 can close
    await n2?.close();
    await dropRedisPrefix(redis, prefix); // and quits
    await backend.teardown();
  });

  test('dead path on node 2: its online session gets what was sent meanwhile without reconnecting, and a ban set meanwhile closes it', { timeout: 30_000 }, async () => {
    const b = await deviceClient(n2.url, newUserId(), { deviceId: 'b' });
    const banned = await deviceClient(n2.url, newUserId());
    const senders = await Promise.all([0, 1].map(() => deviceClient(n1.url, newUserId())));
    clients.push(b, banned, ...senders);
    const first = await said(senders[0]!, b.userId, 'before');
    await waitEvent(b, String(first.id));

    proxy.freeze();
    const lost = await said(senders[1]!, b.userId, 'after the path died');
    const ban = await fetch(`${n1.httpUrl}/admin/users/${banned.userId}/ban`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ durationMs: 60_000 }),
    });
    assert.equal(ban.status, 200);
    await within(waitEvent(b, String(lost.id)), 10_000, 'the message sent while node 2 was cut off');
    assert.equal(b.closeCode, undefined, 'no reconnect');
    assert.equal((await within(banned.closed, 10_000, 'the banned session on node 2 to close')).code, 4010);
  });

  test('end_session for a session on a node cut from Redis: answered, and the session is closed once the node is back', { timeout: 30_000 }, async () => {
    const u = newUserId();
    const target = await deviceClient(n2.url, u, { deviceId: 'target' });
    const caller = await deviceClient(n1.url, u, { deviceId: 'caller' });
    clients.push(target, caller);
    const list = await ask(caller, { type: 'list_sessions' });
    const targetId = (list.sessions as { sessionId: string; deviceId?: string }[]).find((s) => s.deviceId === 'target')?.sessionId;
    assert.ok(targetId, JSON.stringify(list));
    await proxy.stop(); // node 2 loses Redis; its WebSocket clients do not notice
    await waitFor(async () => (await fetch(`${n2.httpUrl}/readyz`)).status !== 200, 5000, 'node 2 to see Redis gone');
    assert.equal((await ask(caller, { type: 'end_session', sessionId: targetId })).type, 'session_ended');
    await proxy.start();
    assert.equal((await within(target.closed, 10_000, 'the ended session to close once node 2 is back')).code, 4011);
  });

  test('one user with a device on each node, senders on both, node 2 cut and restored mid-stream: both streams contiguous and complete, no reconnect', { timeout: 60_000 }, async () => {
    const u = newUserId();
    const d1 = await deviceClient(n1.url, u, { deviceId: 'one' });
    const d2 = await deviceClient(n2.url, u, { deviceId: 'two' });
    const s1 = await deviceClient(n1.url, newUserId());
    const s2 = await deviceClient(n2.url, newUserId());
    clients.push(d1, d2, s1, s2);
    const ids: string[] = [];
    const round = async (n: number, tag: string): Promise<void> => {
      const replies = await Promise.all(
        Array.from({ length: n }, (_, i) => say(i % 2 === 0 ? s1 : s2, u, `${tag}-${i}`)),
      );
      for (const r of replies) if (r.type === 'message_sent') ids.push(String(r.id));
    };
    await round(40, 'warm');
    const cut = (async () => {
      await sleep(30);
      await proxy.stop();
      await sleep(1500);
      await proxy.start();
    })();
    for (let k = 0; k < 10; k++) {
      await round(20, `r${k}`);
      await sleep(100);
    }
    await cut;
    await round(20, 'after');
    await waitFor(() => [d1, d2].every((d) => ids.every((id) => streamOf(d).some((s) => s.id === id))), 20_000, 'every message on both devices');
    for (const d of [d1, d2]) {
      assert.equal(d.closeCode, undefined);
      assertContiguous(d as DeviceClient);
    }
  });
});
