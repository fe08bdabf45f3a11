/**
 * A Redis path that dies silently (no FIN, no RST) under the presence state's own connection:
 * docs/operations.md — every Redis connection is PINGed every `redisPingIntervalMs` and one without
 * an answer within `redisPingTimeoutMs` is dropped and remade. The presence connection had no such
 * check: its commands timed out for good, and contacts never learnt anyone's presence again while
 * /readyz was back to 200. (Short ping settings keep the test quick.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { REDIS_URL, authedClient, closeAll, dropRedisPrefix, newUserId, startRedisProxy, startServer, uniqueRedisPrefix, waitFor, within, type TestClient, type TestServer } from '../helpers/harness.js';

test('after a silently dead Redis path, presence is published again once the node is ready', { timeout: 60_000 }, async () => {
  const prefix = uniqueRedisPrefix('presence-silent');
  const redis = new Redis(REDIS_URL);
  const proxy = await startRedisProxy();
  const clients: TestClient[] = [];
  let srv: TestServer | undefined;
  const readyz = async (): Promise<number> => {
    const r = await fetch(`${srv!.httpUrl}/readyz`);
    await r.body?.cancel();
    return r.status;
  };
  try {
    srv = await startServer({ redisUrl: proxy.url, redisKeyPrefix: prefix, redisPingIntervalMs: 200, redisPingTimeoutMs: 600, chat: { presenceDebounceMs: 0, strangerPrivacy: false } });
    const aId = newUserId();
    const b = await authedClient(srv.url);
    const a1 = await authedClient(srv.url, aId);
    clients.push(b, a1);
    a1.send({ type: 'chat_message', recipientId: b.userId, content: 'hi', clientMsgId: 'c1' });
    await a1.next((f) => f.type === 'message_sent');
    a1.terminate();
    await a1.closed;
    await within(b.next((f) => f.type === 'presence_changed' && f.userId === aId && f.online === false), 10_000, 'control: A offline published');

    // Every Redis path dies silently.
    proxy.freeze();
    await waitFor(async () => (await readyz()) === 503, 10_000, '/readyz 503 (the silent path noticed)');
    await waitFor(async () => (await readyz()) === 200, 15_000, '/readyz 200 (connections remade)');

    const seen = b.frames.length;
    // Registered before A connects again: only a frame from now on counts.
    const onlineAgain = b.next((f) => f.type === 'presence_changed' && f.userId === aId && f.online === true, true);
    // /readyz counts the bus and the limits; session control's own connections may come back a
    // moment later (auth answers `unavailable` until then): A tries again, as a client would.
    let a2: TestClient | undefined;
    await waitFor(async () => {
      a2 = await authedClient(srv!.url, aId).catch(() => undefined);
      return a2 !== undefined;
    }, 15_000, 'A authenticated again');
    clients.push(a2!);
    const online = await within(
      onlineAgain,
      20_000,
      'B to learn that A is online again',
    ).catch((e: Error) => e);
    assert.ok(!(online instanceof Error), `no presence_changed {online:true} for A after the node was ready again: ${String(online)}; frames since: ${JSON.stringify(b.frames.slice(seen).map((f) => f.type))}; presence errors logged: ${srv.logs.filter((l) => l.includes('presence failed')).length}`);
  } finally {
    await closeAll(...clients);
    await srv?.close();
    await proxy.close();
    await dropRedisPrefix(redis, prefix);
  }
});
