/**
 * The Redis liveness PING (src/redis/liveness.ts): it must drop only a connection that did
 * not answer within `timeoutMs` — never a healthy one whose reply already arrived, and never
 * earlier than `redisPingTimeoutMs`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Redis } from 'ioredis';
import { RedisLiveness } from '../../src/redis/liveness.js';
import { createLimits } from '../../src/limits/index.js';
import { REDIS_URL, uniqueRedisPrefix, waitFor } from '../helpers/harness.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('liveness: a busy event loop right after the PING does not drop a healthy connection whose reply is waiting in the socket', async () => {
  // Redis answers in 20 ms (a healthy round trip across a network), so the reply is never read in
  // the same loop turn as the PING was written in.
  const proxy = await delayingProxy();
  const conn = new Redis(proxy.url);
  await new Promise<void>((r) => conn.once('ready', () => r()));
  proxy.setDelay(20);
  let reconnects = 0;
  conn.on('reconnecting', () => reconnects++);
  const realPing = conn.ping.bind(conn) as () => Promise<string>;
  let blocked = false;
  // The first PING: the loop is busy (GC, a large JSON parse, a sync crypto call...) for 300 ms
  // right after it is written; Redis answers within a millisecond, the reply waits in the socket.
  (conn as unknown as { ping: () => Promise<string> }).ping = () => {
    const p = realPing();
    if (!blocked) {
      blocked = true;
      // Busy in this turn's check phase (an I/O callback's work would do the same): the next turn
      // starts with the clock past the deadline, and timers run before the socket is read.
      setImmediate(() => {
        const until = Date.now() + 300;
        while (Date.now() < until) {
          // busy
        }
      });
    }
    return p;
  };
  let dead = 0;
  const l = new RedisLiveness(conn, { intervalMs: 50, timeoutMs: 200, onDead: () => dead++ });
  try {
    await waitFor(() => blocked, 2000, 'the first PING');
    await sleep(300);
    assert.equal(dead, 0, 'the PING was answered (the reply sat in the socket while the loop was busy): the connection must not be declared dead');
    assert.equal(reconnects, 0, 'a healthy connection must not be dropped and remade');
  } finally {
    l.stop();
    conn.disconnect();
    await proxy.close();
  }
});

/** A TCP proxy to Redis whose Redis→client direction can be delayed (a slow, but alive, Redis). */
async function delayingProxy(): Promise<{ url: string; setDelay(ms: number): void; close(): Promise<void> }> {
  const target = new URL(REDIS_URL);
  let delay = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(Number(target.port || 6379), target.hostname);
    sockets.add(inbound).add(outbound);
    for (const s of [inbound, outbound]) {
      s.on('error', () => {});
      s.on('close', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound);
    outbound.on('data', (chunk: Buffer) => {
      if (delay === 0) inbound.write(chunk);
      else setTimeout(() => inbound.write(chunk), delay);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    setDelay: (ms) => (delay = ms),
    close: async () => {
      const closed = new Promise((r) => server.close(r));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

test('limits: redisPingTimeoutMs 3000 is honoured though the client\'s commandTimeout (2000) rejects the PING first', { timeout: 20_000 }, async () => {
  const proxy = await delayingProxy();
  const errors: string[] = [];
  const limits = createLimits({
    redisUrl: proxy.url,
    keyPrefix: uniqueRedisPrefix('fix-liveness'),
    nodeId: 'fix-liveness',
    ping: { intervalMs: 200, timeoutMs: 3000 },
    onBackendError: (err) => errors.push(err instanceof Error ? err.message : String(err)),
  });
  try {
    assert.ok(await limits.ready(5000));
    // Redis answers every command 2.3 s late: slow, but within redisPingTimeoutMs (3 s).
    proxy.setDelay(2300);
    await sleep(4500);
    const drops = errors.filter((e) => e.includes('silent'));
    assert.deepEqual(drops, [], 'every PING was answered within redisPingTimeoutMs: no connection may be declared silent and dropped');
  } finally {
    proxy.setDelay(0);
    await proxy.close();
    await limits.close();
  }
});
