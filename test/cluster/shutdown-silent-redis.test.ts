/**
 * docs/operations.md: whatever hangs, shutdown ends within `shutdownGraceMs`. With a Redis that
 * went silent (a dead path: no FIN, no RST), presence's goodbye and the adapters' closes waited
 * out their command timeouts after the storage flush and ran seconds past the grace, so the
 * signal handler's hard timer ended the process with code 1. Now they get what is left of the
 * grace (the flush comes first) and close() resolves in time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { REDIS_URL, authedClient, closeAll, dropRedisPrefix, newUserId, startRedisProxy, startServer, uniqueRedisPrefix } from '../helpers/harness.js';

test('shutdown with a silent Redis still ends within shutdownGraceMs, after the storage flush', { timeout: 30_000 }, async () => {
  const proxy = await startRedisProxy(REDIS_URL);
  const prefix = uniqueRedisPrefix('shutdown-silent');
  const admin = new Redis(REDIS_URL);
  const graceMs = 1500;
  const s = await startServer({ redisUrl: proxy.url, redisKeyPrefix: prefix, shutdownGraceMs: graceMs });
  const a = await authedClient(s.url);
  try {
    a.send({ type: 'chat_message', recipientId: newUserId(), content: 'kept', clientMsgId: 'c1' });
    await a.next((f) => f.type === 'message_sent');
    proxy.freeze(); // every Redis connection of the node goes silent
    const started = Date.now();
    await s.server.close();
    const took = Date.now() - started;
    assert.ok(took < graceMs, `close() took ${took} ms, the grace is ${graceMs} ms`);
    assert.ok(s.logs.some((l) => l.includes('not waiting for them')), 'the cut is logged');
  } finally {
    await closeAll(a);
    await s.close();
    await proxy.close();
    await dropRedisPrefix(admin, prefix);
    admin.disconnect();
  }
});
