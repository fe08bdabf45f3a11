/**
 * A node killed and restarted under the same id (an embedding that fixes `nodeId`) before its lapse
 * was noticed: its previous life's session-directory entries are dropped (the joining node names
 * its own id among the dead, and marks itself pruned, so its live entries are written back).
 * Before, `list` kept them (the new life keeps the same liveness key alive) and `list_sessions`
 * showed the dead life's sessions for ever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { REDIS_URL, authedClient, dropRedisPrefix, newUserId, startServer, uniqueRedisPrefix, waitFor, type TestClient, type TestServer } from '../helpers/harness.js';

test('a restarted node id\'s previous-life directory entries are not listed', { timeout: 20_000 }, async () => {
  const prefix = uniqueRedisPrefix('v1-restart');
  const redis = new Redis(REDIS_URL);
  const nodeId = `v1r-${randomUUID().slice(0, 8)}`;
  const user = newUserId();
  let server: TestServer | undefined;
  let client: TestClient | undefined;
  try {
    // The previous life (kill -9): its membership has not lapsed yet, and its entry is in the directory.
    await redis.zadd(`${prefix}ctl:nodes`, Date.now() + 60_000, nodeId);
    const ghost = { sessionId: `${nodeId}:999999`, node: nodeId, ip: '127.0.0.1', since: Date.now() - 1000 };
    await redis.hset(`${prefix}admin:sessions:default:${user}`, ghost.sessionId, JSON.stringify(ghost));
    server = await startServer({ redisUrl: REDIS_URL, redisKeyPrefix: prefix, limits: { nodeLivenessMs: 1500 } }, { nodeId });
    // The join announced the restart (its own membership found there).
    await waitFor(() => server!.logs.some((l) => l.includes('cluster nodes lapsed')), 5000, 'restart announced');
    client = await authedClient(server.url, user);
    client.send({ type: 'list_sessions', requestId: 'r1' });
    const reply = await client.next((f) => f.type === 'sessions');
    const ids = (reply.sessions as { sessionId: string }[]).map((s) => s.sessionId);
    assert.ok(!ids.includes(ghost.sessionId), `the dead life's session is listed: ${JSON.stringify(ids)}`);
    assert.equal(ids.length, 1);
  } finally {
    client?.terminate();
    await server?.close();
    await dropRedisPrefix(redis, prefix);
    redis.disconnect();
  }
});
