/**
 * u3 probe: churn on two nodes sharing Redis — once every session closed, no per-user/per-session
 * Redis key may stay behind (registry hashes, directory hashes, presence states and node sets).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { startServer, authedClient, openClient, newUserId, token, waitFor, uniqueRedisPrefix, dropRedisPrefix, REDIS_URL, type TestClient } from '../helpers/harness.js';
import { postgresBackend } from '../helpers/storage-backends.js';

test('u3: two nodes, churn, then Redis holds no per-user keys', { timeout: 120_000 }, async () => {
  const backend = postgresBackend();
  await backend.setup();
  const prefix = uniqueRedisPrefix('u3');
  const admin = new Redis(REDIS_URL);
  const storage = backend.allocate().storage;
  const cfg = {
    storage,
    redisUrl: REDIS_URL,
    redisKeyPrefix: prefix,
    maxConnectionsPerIP: 100_000,
    maxConnectionsPerUser: 10,
    rateLimit: { messagesPerMinute: 100_000, messagesPerHour: 1_000_000, burstLimit: 100_000, burstWindow: 1000 },
    limits: { connectionAttemptsPerMinute: 100_000, maxUnauthenticated: 100_000, maxUnauthenticatedPerIP: 100_000, frames: { limit: 100_000, windowMs: 1000 }, requests: { limit: 100_000, windowMs: 1000 }, nodeLivenessMs: 3000 },
    chat: { presenceDebounceMs: 20, receiptCoalesceMs: 0 },
  };
  const n1 = await startServer(cfg as never, { nodeId: 'u3-n1' });
  const n2 = await startServer(cfg as never, { nodeId: 'u3-n2' });
  try {
    const users = Array.from({ length: 20 }, () => newUserId());
    for (let round = 0; round < 3; round++) {
      const clients: (TestClient & { userId: string })[] = [];
      await Promise.all(users.flatMap((u, k) => [n1, n2, k % 2 ? n1 : n2].map(async (n) => clients.push(await authedClient(n.url, u)))));
      await Promise.all(clients.map(async (c, i) => {
        const to = users[(users.indexOf(c.userId) + 1) % users.length]!;
        const cid = `m${round}-${i}-${randomUUID().slice(0, 6)}`;
        const reply = c.next((f) => f.clientMsgId === cid, true);
        c.send({ type: 'chat_message', recipientId: to, content: 'hi', clientMsgId: cid });
        c.send({ type: 'typing_indicator', recipientId: to, isTyping: true });
        c.send({ type: 'set_presence', visible: (i + round) % 3 !== 0 });
        await reply.catch(() => {});
      }));
      const midAuth = Array.from({ length: 20 }, (_, i) => openClient((i % 2 ? n1 : n2).url));
      await Promise.all(midAuth.map(async (c, i) => {
        await c.opened;
        c.send({ type: 'auth', token: await token({ sub: users[i]! }) });
        c.terminate();
      }));
      for (const c of clients) if (c.userId.charCodeAt(0) % 2) c.terminate(); else void c.close();
      await Promise.all([...clients, ...midAuth].map((c) => c.closed));
    }
    const keys = async (): Promise<string[]> => {
      const all = (await admin.keys(`${prefix}*`)).map((k) => k.slice(prefix.length));
      // liveness keys, generation marker, rate-limit windows (they expire) are expected
      return all.filter((k) => !/^:node:|^:presence:gen$|^:presence:nodes$|^rl|^:rl|^:?lim/.test(k)).sort();
    };
    await waitFor(async () => (await keys()).every((k) => !/user|presence:u|admin:sessions|presence:n:/.test(k)), 8000, 'keys gone').catch(() => {});
    const left = await keys();
    console.log('left keys', left.length, left.slice(0, 20));
    assert.deepEqual(left.filter((k) => /user|presence:u|admin:sessions|presence:n:/.test(k)), []);
    for (const n of [n1, n2]) assert.deepEqual({ ...n.server.stats() }, { open: 0, unauthenticated: 0, unauthenticatedIps: 0, users: 0 });
  } finally {
    await n1.close();
    await n2.close();
    const after = (await admin.keys(`${prefix}*`)).map((k) => k.slice(prefix.length));
    console.log('after close', after.filter((k) => !k.startsWith(':rl:')));
    await dropRedisPrefix(admin, prefix);
    await backend.teardown();
  }
});
