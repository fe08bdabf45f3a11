/**
 * The remembered closes (admin/session-control.ts, `admin:close:<target>` kept 1 h):
 * session ids are `<nodeId>:s<n>` with n a per-process counter starting at 1, so a node embedded
 * with a fixed `nodeId` (documented: "random per process unless embedded with nodeId") reuses the
 * same ids after a restart. A disconnect remembered for the old process's session must not close
 * the new process's session that happens to get the same id (another user's).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { openSessionControl } from '../../src/admin/session-control.js';
import type { Session } from '../../src/session/session.js';
import { SessionRegistry } from '../../src/server/session-registry.js';
import { LocalBus } from '../../src/bus/local-bus.js';
import { REDIS_URL, dropRedisPrefix, startRedisProxy, uniqueRedisPrefix, waitFor } from '../helpers/harness.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function fakeSession(id: string, userKey: string, closed: string[], identity?: { userId: string; tenantId: string; jti?: string }): Session {
  const s = {
    id,
    userKey,
    ip: '192.0.2.9',
    deviceId: undefined,
    authenticatedAt: Date.now(),
    identity,
    open: true,
    get isOpen(): boolean {
      return s.open;
    },
    close(code: number): void {
      closed.push(`${userKey}:${code}`);
      s.open = false;
    },
    reject(): void {
      closed.push(`${userKey}:rejected`);
      s.open = false;
    },
  };
  return s as unknown as Session;
}

test('a remembered disconnect of the old process\'s session n:s5 does not close another user\'s session n:s5 after a restart with the same nodeId', { timeout: 30_000 }, async () => {
  const prefix = uniqueRedisPrefix('fix-remembered');
  const proxy = await startRedisProxy(REDIS_URL);
  const errors: string[] = [];
  const opts = { redisUrl: proxy.url, prefix, nodeId: 'pod-2', ping: { intervalMs: 0, timeoutMs: 3000 }, onError: (e: unknown, op: string) => errors.push(`${op}:${String(e)}`) };
  const closed: string[] = [];

  // The first process: an admin disconnects alice's session pod-2:s5; it closes at once.
  const beforeSessions = new SessionRegistry(new LocalBus());
  const before = await openSessionControl({ ...opts, local: beforeSessions });
  beforeSessions.observe(before.observer);
  const alice = fakeSession('s5', 't:alice', closed);
  beforeSessions.add(alice);
  await before.disconnect('t:alice', 'pod-2:s5');
  await waitFor(() => closed.includes('t:alice:4012') || closed.length > 0, 3000, 'alice closed');
  beforeSessions.remove(alice);
  await before.close();

  // The process restarts (same nodeId); its 5th session, bob's, is pod-2:s5 again.
  const afterSessions = new SessionRegistry(new LocalBus());
  const after = await openSessionControl({ ...opts, local: afterSessions });
  afterSessions.observe(after.observer);
  const bob = fakeSession('s5', 't:bob', closed);
  afterSessions.add(bob);
  closed.length = 0;
  // Within the hour, the node's Redis connections are remade once (a network blip, a failover, a liveness drop).
  await proxy.stop();
  await sleep(300);
  await proxy.start();
  await sleep(4000);
  try {
    assert.deepEqual(closed, [], 'bob was never disconnected by anyone');
  } finally {
    afterSessions.remove(bob);
    await after.close();
    await proxy.close();
    await dropPrefix(prefix);
  }
});

test('session control reports itself unhealthy while its Redis connections are down, healthy once both are back (/readyz counts it)', { timeout: 30_000 }, async () => {
  const prefix = uniqueRedisPrefix('control-health');
  const proxy = await startRedisProxy(REDIS_URL);
  const sessions = new SessionRegistry(new LocalBus());
  const control = await openSessionControl({ redisUrl: proxy.url, prefix, nodeId: 'pod-h', local: sessions, ping: { intervalMs: 0, timeoutMs: 3000 }, onError: () => {} });
  try {
    assert.equal(control.healthy(), true);
    await proxy.stop();
    await waitFor(() => !control.healthy(), 5000, 'unhealthy once the connections dropped');
    await proxy.start();
    await waitFor(() => control.healthy(), 10_000, 'healthy again once both reconnected');
  } finally {
    await control.close();
    await proxy.close();
    await dropPrefix(prefix);
  }
});

/** dropRedisPrefix needs a connection that is ready (a new one is not yet). */
async function dropPrefix(prefix: string): Promise<void> {
  const r = new Redis(REDIS_URL, { lazyConnect: true });
  await r.connect();
  await dropRedisPrefix(r, prefix);
}

test('a ban missed while cut from Redis: a recheck read that fails while the connections stay up (an error reply, a slow Redis) is tried again until the session is closed', { timeout: 30_000 }, async () => {
  const prefix = uniqueRedisPrefix('recheck-retry');
  const proxy = await startRedisProxy(REDIS_URL);
  const errors: string[] = [];
  const ping = { intervalMs: 0, timeoutMs: 3000 };
  const onError = (e: unknown, op: string): void => void errors.push(`${op}:${e instanceof Error ? e.message : String(e)}`);
  const aSessions = new SessionRegistry(new LocalBus());
  const bSessions = new SessionRegistry(new LocalBus());
  const a = await openSessionControl({ redisUrl: REDIS_URL, prefix, nodeId: 'pod-a', local: aSessions, ping, onError });
  const b = await openSessionControl({ redisUrl: proxy.url, prefix, nodeId: 'pod-b', local: bSessions, ping, onError });
  aSessions.observe(a.observer);
  bSessions.observe(b.observer);
  const closed: string[] = [];
  const bob = fakeSession('s1', 't:bob', closed, { userId: 'bob', tenantId: 't', jti: 'jti-1' });
  const admin = new Redis(REDIS_URL);
  try {
    bSessions.add(bob);
    await proxy.stop();
    await waitFor(() => !b.healthy(), 5000, 'node b cut from Redis');
    await a.ban('t:bob', Date.now() + 60_000); // pub/sub: node b misses the command
    // The recheck's first read after the reconnect is answered with an error; the connection stays up.
    const isDenied = b.policy.isDenied.bind(b.policy);
    let failures = 0;
    (b.policy as { isDenied: typeof b.policy.isDenied }).isDenied = async (identity) => {
      if (failures++ === 0) throw new Error('BUSY Redis is busy running a script (simulated)');
      return isDenied(identity);
    };
    await proxy.start();
    await waitFor(() => closed.length > 0, 10_000, `bob closed (errors: ${errors.join(' | ')})`);
    assert.deepEqual(closed, ['t:bob:rejected']);
    assert.ok(failures >= 2, 'read again after the failure');
  } finally {
    bSessions.remove(bob);
    await b.close();
    await a.close();
    await proxy.close();
    await dropRedisPrefix(admin, prefix);
    admin.disconnect();
  }
});
