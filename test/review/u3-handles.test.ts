/**
 * u3 probe: after churn and close(), a node (one alone, and two on Redis) leaves no open handle
 * behind (timers, sockets, servers) — process.getActiveResourcesInfo() returns to its baseline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer, authedClient, openClient, newUserId, token, waitFor, uniqueRedisPrefix, REDIS_URL, type TestClient, type TestServer } from '../helpers/harness.js';
import { postgresBackend } from '../helpers/storage-backends.js';

const count = (): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
  return out;
};

async function churn(nodes: TestServer[]): Promise<void> {
  const users = Array.from({ length: 15 }, () => newUserId());
  for (let round = 0; round < 2; round++) {
    const clients: (TestClient & { userId: string })[] = [];
    await Promise.all(users.flatMap((u, k) => [nodes[0]!, nodes[k % nodes.length]!].map(async (n) => clients.push(await authedClient(n.url, u)))));
    await Promise.all(clients.map(async (c, i) => {
      const to = users[(users.indexOf(c.userId) + 1) % users.length]!;
      const cid = `m${round}-${i}-${randomUUID().slice(0, 6)}`;
      const reply = c.next((f) => f.clientMsgId === cid, true);
      c.send({ type: 'chat_message', recipientId: to, content: 'hi', clientMsgId: cid });
      c.send({ type: 'set_presence', visible: i % 2 === 0 });
      await reply.catch(() => {});
    }));
    const mid = Array.from({ length: 10 }, (_, i) => openClient(nodes[i % nodes.length]!.url));
    await Promise.all(mid.map(async (c, i) => { await c.opened; c.send({ type: 'auth', token: await token({ sub: users[i]! }) }); c.terminate(); }));
    const idle = Array.from({ length: 10 }, (_, i) => openClient(nodes[i % nodes.length]!.url));
    await Promise.all(idle.map((c) => c.opened));
    for (const c of [...clients, ...idle]) c.terminate();
    await Promise.all([...clients, ...mid, ...idle].map((c) => c.closed));
  }
}

test('u3: one node leaves no handle open after churn and close', { timeout: 60_000 }, async () => {
  const before = count();
  const s = await startServer({ chat: { presenceDebounceMs: 20 } } as never);
  await churn([s]);
  await s.close();
  let after: Record<string, number> = {};
  await waitFor(() => JSON.stringify((after = count())) === JSON.stringify(before), 3000, 'handles').catch(() => {});
  assert.deepEqual(after, before);
});

test('u3: two nodes on Redis leave no handle open after churn and close', { timeout: 90_000 }, async () => {
  const backend = postgresBackend();
  await backend.setup();
  const before = count();
  const cfg = { storage: backend.allocate().storage, redisUrl: REDIS_URL, redisKeyPrefix: uniqueRedisPrefix('u3h'), limits: { nodeLivenessMs: 3000 }, chat: { presenceDebounceMs: 20 } };
  const nodes = [await startServer(cfg as never, { nodeId: 'u3h-1' }), await startServer(cfg as never, { nodeId: 'u3h-2' })];
  await churn(nodes);
  for (const n of nodes) await n.close();
  let after: Record<string, number> = {};
  await waitFor(() => JSON.stringify((after = count())) === JSON.stringify(before), 3000, 'handles').catch(() => {});
  await backend.teardown();
  assert.deepEqual(after, before);
});
