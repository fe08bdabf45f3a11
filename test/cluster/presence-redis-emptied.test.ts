/**
 * Redis losing every key of this server's prefix (deleted; or the connections cut through a proxy
 * meanwhile, as a real restart does) while user A is online and shown online to contact B; A then
 * disconnects before the node's next sweep. docs/protocol.md §6a: a contact may get the same state
 * twice but does not keep an older one — B must get `presence_changed {A, online: false}`. The
 * published state key had vanished, so A's check found "offline" already published and nothing
 * ever corrected B; the states now live under a generation marker whose loss makes an offline flip
 * publish anyway (src/presence/presence-state.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { REDIS_URL, authedClient, closeAll, deleteRedisPrefix, dropRedisPrefix, startRedisProxy, startServer, uniqueRedisPrefix, waitReadyz, within, type TestClient, type TestServer } from '../helpers/harness.js';

for (const how of ['keys deleted (no disconnect)', 'Redis restarted empty (connections cut, keys gone, back)'] as const) {
test(`after ${how}, a contact shown online who disconnects is published offline`, { timeout: 30_000 }, async () => {
  const proxy = await startRedisProxy();
  const prefix = uniqueRedisPrefix('presence-emptied');
  const redis = new Redis(REDIS_URL);
  const clients: TestClient[] = [];
  let srv: TestServer | undefined;
  try {
    // nodeLivenessMs 60 s: the sweep (every 20 s) does not run during the test.
    srv = await startServer({ redisUrl: proxy.url, redisKeyPrefix: prefix, limits: { nodeLivenessMs: 60_000 }, chat: { presenceDebounceMs: 0, strangerPrivacy: false } });
    const a = await authedClient(srv.url);
    const b = await authedClient(srv.url);
    clients.push(a, b);
    // A writes to B: they share a conversation, so B learns A's presence.
    a.send({ type: 'chat_message', recipientId: b.userId, content: 'hi', clientMsgId: 'c1' });
    const sent = await a.next((f) => f.type === 'message_sent');
    b.send({ type: 'presence', conversationId: sent.conversationId, requestId: 'p1' });
    const pres = await b.next((f) => f.type === 'presence' && f.requestId === 'p1');
    // A's online state was published at connect (debounce 0) — wait for it if it was not yet.
    if (!(pres.online as string[]).includes(a.userId)) await b.next((f) => f.type === 'presence_changed' && f.userId === a.userId && f.online === true);

    // Redis restarted empty: every key of this prefix is gone.
    if (!how.startsWith('keys')) await proxy.stop();
    await deleteRedisPrefix(redis, prefix);

    if (!how.startsWith('keys')) {
      await proxy.start();
      await waitReadyz(srv.httpUrl, 15_000);
    }
    a.terminate();
    await a.closed;
    const offline = await within(
      b.next((f) => f.type === 'presence_changed' && f.userId === a.userId && f.online === false),
      5000,
      'B to learn that A went offline',
    ).catch((e: Error) => e);
    assert.ok(!(offline instanceof Error), `B never got presence_changed {online:false} for A: ${String(offline)}`);
  } finally {
    await closeAll(...clients);
    await srv?.close();
    await proxy.close();
    await dropRedisPrefix(redis, prefix);
  }
});
}
