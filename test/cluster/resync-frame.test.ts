/**
 * Frames outside the timeline (receipts, read positions, presence, typing) are published once over
 * Redis and not stored per user: while a node is cut from Redis, its sessions miss them, and the
 * resync after the reconnect reads only timelines. Those sessions now get a `resync` frame
 * (docs/protocol.md §4) without reconnecting, and what they ask for then is current: the peer's
 * read position in `history`'s receipts, the peer gone offline in `presence`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { REDIS_URL, closeAll, dropRedisPrefix, newUserId, startRedisProxy, startServer, uniqueRedisPrefix, waitFor, type TcpProxy, type TestClient, type TestServer } from '../helpers/harness.js';
import { postgresBackend } from '../helpers/storage-backends.js';
import { GENEROUS_BUDGETS, deviceClient, expectReply, said, waitEvent } from '../helpers/timeline.js';

describe('a node cut from Redis tells its sessions to ask again once it is back', () => {
  const backend = postgresBackend('resync_frame');
  const prefix = uniqueRedisPrefix('resync-frame');
  const redis = new Redis(REDIS_URL);
  const clients: TestClient[] = [];
  let proxy: TcpProxy;
  let n1: TestServer;
  let n2: TestServer;

  before(async () => {
    await backend.setup();
    proxy = await startRedisProxy(REDIS_URL);
    const common = { storage: backend.allocate().storage, redisKeyPrefix: prefix, chat: { receiptCoalesceMs: 0, presenceDebounceMs: 20 }, ...GENEROUS_BUDGETS };
    n1 = await startServer({ ...common, redisUrl: REDIS_URL }, { nodeId: 'resync-n1' });
    n2 = await startServer({ ...common, redisUrl: proxy.url }, { nodeId: 'resync-n2' });
  });

  after(async () => {
    await closeAll(...clients);
    await n1?.close();
    await n2?.close();
    await proxy?.close();
    await dropRedisPrefix(redis, prefix);
    redis.disconnect();
    await backend.teardown();
  });

  test('a read and a contact going offline while node 2 was cut: its session gets `resync`, and then sees both', { timeout: 30_000 }, async () => {
    const a = await deviceClient(n2.url, newUserId(), { deviceId: 'a' });
    const b = await deviceClient(n1.url, newUserId(), { deviceId: 'b' });
    clients.push(a, b);
    const m = await said(a, b.userId, 'hello');
    await waitEvent(b, String(m.id));
    await said(b, a.userId, 'hi back'); // both wrote: receipts and presence are shared
    await waitFor(() => a.frames.some((f) => f.type === 'presence_changed' && f.userId === b.userId && f.online === true), 5000, 'a sees b online');

    await proxy.stop();
    await waitFor(async () => (await fetch(`${n2.httpUrl}/readyz`)).status !== 200, 5000, 'node 2 sees Redis gone');
    await expectReply(b, { type: 'read', conversationId: m.conversationId, upToSeq: 2 }, 'read_updated');
    await b.close();
    await waitFor(async () => (await redis.keys(`${prefix}:presence:u:*${b.userId}*`)).length === 0, 5000, 'b offline in Redis');
    const before = a.frames.length;
    await proxy.start();

    await waitFor(() => a.frames.slice(before).some((f) => f.type === 'resync'), 10_000, 'the resync frame');
    assert.equal(a.closeCode, undefined, 'no reconnect');
    const history = await expectReply(a, { type: 'history', conversationId: m.conversationId }, 'history');
    const receipts = history.receipts as { members?: Array<{ userId: string; read?: number }> } | undefined;
    assert.ok((receipts?.members ?? []).some((r) => r.userId === b.userId && (r.read ?? 0) >= 2), JSON.stringify(history.receipts));
    const presence = await expectReply(a, { type: 'presence', conversationId: m.conversationId }, 'presence');
    assert.equal((presence.online as string[]).includes(b.userId), false);
  });
});
