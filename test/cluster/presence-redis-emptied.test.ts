/**
 * Redis losing every key of this server's prefix (deleted; or the connections cut through a proxy
 * meanwhile, as a real restart does) while user A is shown online to contact B. docs/protocol.md
 * §6a: a user is online while they hold a session on any node, and a contact may get the same state
 * twice but does not keep an older one.
 * - A then disconnects: B must get `presence_changed {A, online: false}`. A's state key had vanished,
 *   so A's check found "offline" already published and nothing ever corrected B.
 * - A holds sessions on two nodes and closes one: A is still online, B must not be told otherwise —
 *   though right after the loss the cluster's session count misses the other node's sessions until
 *   its heartbeat writes them back. An offline flip that finds no state shortly after a loss is
 *   held back until the counts are back, checked again, then published.
 * `limits.nodeLivenessMs` 900: heartbeats and sweeps every 300 ms.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { postgresBackend } from '../helpers/storage-backends.js';
import { createGroup, deviceClient, expectReply, said } from '../helpers/timeline.js';
import { REDIS_URL, authedClient, closeAll, newUserId, waitFor, deleteRedisPrefix, dropRedisPrefix, startRedisProxy, startServer, uniqueRedisPrefix, waitReadyz, within, type TestClient, type TestServer } from '../helpers/harness.js';

for (const how of ['keys deleted (no disconnect)', 'Redis restarted empty (connections cut, keys gone, back)'] as const) {
test(`after ${how}, a contact shown online who disconnects is published offline`, { timeout: 30_000 }, async () => {
  const proxy = await startRedisProxy();
  const prefix = uniqueRedisPrefix('presence-emptied');
  const redis = new Redis(REDIS_URL);
  const clients: TestClient[] = [];
  let srv: TestServer | undefined;
  try {
    srv = await startServer({ redisUrl: proxy.url, redisKeyPrefix: prefix, limits: { nodeLivenessMs: 900 }, chat: { presenceDebounceMs: 0, strangerPrivacy: false } });
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
      10_000,
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

test('after Redis lost its keys, closing one of two sessions does not publish a user still connected to another node offline', { timeout: 40_000 }, async () => {
  const backend = postgresBackend('presence_emptied');
  const prefix = uniqueRedisPrefix('presence-emptied2');
  const redis = new Redis(REDIS_URL);
  const clients: TestClient[] = [];
  let n1: TestServer | undefined;
  let n2: TestServer | undefined;
  try {
    await backend.setup();
    const common = { storage: backend.allocate().storage, redisKeyPrefix: prefix, redisUrl: REDIS_URL, limits: { nodeLivenessMs: 900 }, chat: { presenceDebounceMs: 0 } };
    n1 = await startServer(common);
    n2 = await startServer(common);
    const watcher = await deviceClient(n1.url, newUserId());
    const victimId = newUserId();
    clients.push(watcher);
    const gid = await createGroup(watcher, [victimId]);
    const victimOn2 = await deviceClient(n2.url, victimId);
    const victimOn1 = await deviceClient(n1.url, victimId);
    clients.push(victimOn2, victimOn1);
    await said(victimOn2, { conversationId: gid }, 'hello');
    const listed = async (): Promise<boolean> => ((await expectReply(watcher, { type: 'presence', conversationId: gid }, 'presence')).online as string[]).includes(victimId);
    await waitFor(listed, 8000, 'victim shown online', 100);

    await deleteRedisPrefix(redis, prefix);
    const seen = watcher.frames.length;
    victimOn1.terminate();
    await victimOn1.closed;
    // Settled: the victim's state is back in Redis (both nodes re-checked their users).
    await waitFor(listed, 15_000, 'victim listed online again', 100);
    const told = watcher.frames.slice(seen).filter((f) => f.type === 'presence_changed' && f.userId === victimId);
    assert.deepEqual(told.filter((f) => f.online === false), [], 'told the victim went offline although it is connected to node 2');
    assert.equal(victimOn2.ws.readyState, 1);
  } finally {
    await closeAll(...clients);
    await n2?.close();
    await n1?.close();
    await dropRedisPrefix(redis, prefix);
    await backend.teardown();
  }
});
