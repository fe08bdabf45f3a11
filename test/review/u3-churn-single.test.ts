/**
 * u3 probe: churn on one node — per-user/per-session structures must return to baseline once every
 * socket closed (architecture: counters deleted at zero; session registry empty without sessions).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer, authedClient, openClient, newUserId, token, waitFor, type TestClient } from '../helpers/harness.js';
import { RawSocket } from '../helpers/raw-ws.js';

const BIG = {
  maxConnectionsPerIP: 100_000,
  maxConnectionsPerUser: 10,
  rateLimit: { messagesPerMinute: 100_000, messagesPerHour: 1_000_000, burstLimit: 100_000, burstWindow: 1000 },
  limits: {
    connectionAttemptsPerMinute: 100_000,
    maxUnauthenticated: 100_000,
    maxUnauthenticatedPerIP: 100_000,
    frames: { limit: 100_000, windowMs: 1000 },
    requests: { limit: 100_000, windowMs: 1000 },
  },
  chat: { presenceDebounceMs: 20 },
} as const;

test('u3: after heavy churn the node returns to its baseline', { timeout: 120_000 }, async () => {
  const s = await startServer(BIG as never);
  try {
    const users = Array.from({ length: 30 }, () => newUserId());
    for (let round = 0; round < 4; round++) {
      const clients: (TestClient & { userId: string })[] = [];
      await Promise.all(users.flatMap((u) => [0, 1, 2].map(async () => clients.push(await authedClient(s.url, u)))));
      // traffic
      await Promise.all(clients.map(async (c, i) => {
        const to = users[(users.indexOf(c.userId) + 1) % users.length]!;
        const cid = `m${round}-${i}-${randomUUID().slice(0, 6)}`;
        const reply = c.next((f) => f.clientMsgId === cid, true);
        c.send({ type: 'chat_message', recipientId: to, content: 'hi', clientMsgId: cid });
        c.send({ type: 'typing_indicator', recipientId: to, isTyping: true });
        c.send({ type: 'set_presence', visible: i % 2 === 0 });
        await reply.catch(() => {});
      }));
      // sockets that never authenticate
      const idle = Array.from({ length: 50 }, () => openClient(s.url));
      await Promise.all(idle.map((c) => c.opened));
      // killed mid-auth: auth frame sent, socket dropped at once
      const midAuth = Array.from({ length: 50 }, () => openClient(s.url));
      await Promise.all(midAuth.map(async (c, i) => {
        await c.opened;
        c.send({ type: 'auth', token: await token({ sub: users[i % users.length]! }) });
        c.terminate();
      }));
      // killed mid-handshake (upgrade request then reset)
      const raws = await Promise.all(Array.from({ length: 30 }, () => RawSocket.open(s.port)));
      for (const r of raws) {
        r.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nOrigin: http://localhost:3000\r\nSec-WebSocket-Key: ${Buffer.alloc(16, 1).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
        void r.destroy();
      }
      for (const c of [...clients, ...idle]) c.terminate();
      await Promise.all([...clients, ...idle, ...midAuth].map((c) => c.closed));
    }
    const registry = (s.server.limits as unknown as { registry: { size(): number } }).registry;
    await waitFor(() => {
      const st = s.server.stats();
      return st.open === 0 && st.unauthenticated === 0 && st.unauthenticatedIps === 0 && st.users === 0 && registry.size() === 0;
    }, 10_000, 'baseline').catch(() => {});
    assert.deepEqual({ ...s.server.stats(), registry: registry.size() }, { open: 0, unauthenticated: 0, unauthenticatedIps: 0, users: 0, registry: 0 });
  } finally {
    await s.close();
  }
});
