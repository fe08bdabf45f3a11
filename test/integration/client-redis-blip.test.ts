/**
 * A handshake refused because Redis is unreachable (cluster mode fails closed for new
 * connections) says `Retry-After: 5`, not 60: the limits client reconnects within 2 s of Redis
 * returning, and an SDK client whose reconnect landed in a blip of a second or two stayed offline
 * a minute after handshakes were accepted again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createNodeClient } from '../../src/client/node.js';
import { signDevToken } from '../../src/auth/dev-token.js';
import { handshakeStatus, newUserId, startServer, startTcpProxy, uniqueRedisPrefix, waitFor, REDIS_URL, TEST_SECRET, type TestServer } from '../helpers/harness.js';

test('a client whose reconnect lands in a short Redis outage is back within seconds of Redis returning', { timeout: 40_000 }, async () => {
  const target = new URL(REDIS_URL);
  const redisProxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
  let srv: TestServer | undefined;
  let clientPath: Awaited<ReturnType<typeof startTcpProxy>> | undefined;
  const id = newUserId();
  const disconnects: string[] = [];
  let readies = 0;
  let client: ReturnType<typeof createNodeClient> | undefined;
  try {
    srv = await startServer({ redisUrl: redisProxy.url, redisKeyPrefix: uniqueRedisPrefix('fix28') });
    clientPath = await startTcpProxy('127.0.0.1', srv.port);
    client = createNodeClient({
      url: `ws://127.0.0.1:${clientPath.port}/ws`,
      token: () => signDevToken(TEST_SECRET, { sub: id, ttl: 3600 }),
      backoff: { baseMs: 50, maxMs: 400 },
    });
    client.on('disconnected', (d) => disconnects.push(`${d.code} ${d.reason} retryInMs=${d.retryInMs}`));
    client.on('ready', () => readies++);
    await client.connect();

    await redisProxy.stop();
    const url = srv.url;
    await waitFor(async () => (await handshakeStatus(url).catch(() => 0)) === 503, 10_000, 'handshakes refused with 503');
    // The client's connection drops (a network change): its reconnect lands in the outage.
    await clientPath.stop();
    await clientPath.start();
    await waitFor(() => disconnects.length > 0, 5000, 'the client to notice the drop');
    await new Promise((r) => setTimeout(r, 1000));
    await redisProxy.start();
    await waitFor(async () => (await handshakeStatus(url).catch(() => 101)) === 101, 10_000, 'handshakes accepted again').catch(() => {});
    const back = Date.now();
    await waitFor(() => readies >= 2, 10_000, 'client back').catch(() => {});
    assert.equal(readies, 2, `not back within 10 s of Redis answering again (${Date.now() - back} ms); disconnects: ${disconnects.join('; ')}`);
  } finally {
    client?.close();
    await clientPath?.close();
    await srv?.close();
    await redisProxy.close();
  }
});
