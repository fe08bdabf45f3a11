/**
 * The connection registry after Redis lost every key of the cluster without the connection
 * noticing (FLUSHDB, eviction, a restart between commands). `maxConnectionsPerUser` (here 1) is
 * cluster-wide: a second session of the user is refused `too_many_sessions`. The counts used to
 * come back only at the next heartbeat (`nodeLivenessMs / 3`), admitting anyone until then; an
 * acquire now finds the node's own liveness key gone and writes the node's counts back first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { REDIS_URL, closeAll, deleteRedisPrefix, dropRedisPrefix, newUserId, openClient, startRedisProxy, startServer, token, uniqueRedisPrefix, waitReadyz, within, type TestClient, type TestServer } from '../helpers/harness.js';

async function authReply(url: string, sub: string, clients: TestClient[]): Promise<string> {
  const c = openClient(url);
  clients.push(c);
  await c.opened;
  c.send({ type: 'auth', token: await token({ sub }) });
  const r = await within(c.next((f) => f.type === 'auth_success' || f.type === 'auth_failure'), 10_000, 'auth reply');
  return r.type === 'auth_success' ? 'auth_success' : String(r.reason);
}

// Only the keys vanish (FLUSHDB, eviction, a failover to an empty replica that keeps the connection):
// the node hears no reconnect, so only its next heartbeat (every nodeLivenessMs / 3, 5 s by default)
// rewrites its counts; meanwhile every per-user and per-IP limit of its sessions reads 0.
// (With the connection cut too, the 'ready' handler rewrites them at once: that variant passes.)
for (const how of ['keys deleted (no disconnect)'] as const) {
  test(`registry after ${how}: a second session over maxConnectionsPerUser 1 is still refused`, { timeout: 30_000 }, async () => {
    const prefix = uniqueRedisPrefix('registry-emptied');
    const redis = new Redis(REDIS_URL);
    const proxy = await startRedisProxy();
    const clients: TestClient[] = [];
    let srv: TestServer | undefined;
    try {
      srv = await startServer({ redisUrl: proxy.url, redisKeyPrefix: prefix, maxConnectionsPerUser: 1 });
      const user = newUserId();
      assert.equal(await authReply(srv.url, user, clients), 'auth_success');
      assert.equal(await authReply(srv.url, user, clients), 'too_many_sessions', 'control: the limit holds before the loss');
      if (how.startsWith('keys')) {
        await deleteRedisPrefix(redis, prefix);
      } else {
        await proxy.stop();
        await deleteRedisPrefix(redis, prefix);
        await proxy.start();
        await waitReadyz(srv.httpUrl, 15_000);
      }
      assert.equal(await authReply(srv.url, user, clients), 'too_many_sessions', 'the user already holds a session on this node');
    } finally {
      await closeAll(...clients);
      await srv?.close();
      await proxy.close();
      await deleteRedisPrefix(redis, prefix);
      await dropRedisPrefix(redis, prefix);
    }
  });
}
