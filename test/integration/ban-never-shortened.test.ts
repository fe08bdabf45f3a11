/**
 * A ban issued while a longer one is in force never shortens it: the first reply promised its
 * `until` (docs/operations.md: `auth` is refused until `until`), and lifting a ban early takes
 * `DELETE /ban`. Two operators, or an automated short ban landing on a manual long one, must not
 * end the long one. Both policies (memory and Redis) and the admin API, whose reply names the end
 * that stands. Before, the second ban overwrote the first's end.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { MemoryAccessPolicy, type AccessPolicy } from '../../src/admin/access-policy.js';
import { RedisAccessPolicy } from '../../src/admin/redis-access-policy.js';
import { REDIS_URL, closeAll, dropRedisPrefix, newUserId, openClient, startServer, token, uniqueRedisPrefix, type TestClient } from '../helpers/harness.js';

const ADMIN_TOKEN = randomBytes(24).toString('hex');
const prefix = uniqueRedisPrefix('ban-extend');
const redis = new Redis(REDIS_URL, { lazyConnect: true });

after(async () => {
  await dropRedisPrefix(redis, prefix);
  redis.disconnect();
});

async function check(policy: AccessPolicy): Promise<void> {
  const identity = { userId: newUserId(), tenantId: 'default', role: undefined, expiresAt: 0 };
  const key = `default:${identity.userId}`;
  const long = Date.now() + 3_600_000;
  assert.equal(await policy.ban(key, long), long);
  assert.equal(await policy.ban(key, Date.now() + 20), long, 'the end that stands is the longer ban');
  await sleep(60);
  assert.equal(await policy.isDenied(identity), 'banned', 'the 1 h ban still holds');
  // A longer ban does extend it.
  assert.equal(await policy.ban(key, long + 1000), long + 1000);
  assert.equal(await policy.unban(key), true);
  assert.equal(await policy.isDenied(identity), undefined, 'unban lifts it');
}

test('memory policy: a later, shorter ban does not shorten the ban in force', async () => {
  await check(new MemoryAccessPolicy());
});

test('Redis policy: a later, shorter ban does not shorten the ban in force', async () => {
  await check(new RedisAccessPolicy(redis, prefix));
});

async function ban(base: string, sub: string, durationMs: number): Promise<{ status: number; until: number }> {
  const res = await fetch(`${base}/admin/users/${sub}/ban`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ durationMs }),
  });
  const body = (await res.json()) as { until: number };
  return { status: res.status, until: body.until };
}

test('admin API: a short ban during a 1 h ban leaves the 1 h ban, and the reply says so', async () => {
  const s = await startServer({ admin: { token: ADMIN_TOKEN } });
  const clients: TestClient[] = [];
  try {
    const sub = newUserId();
    const first = await ban(s.httpUrl, sub, 3_600_000);
    assert.equal(first.status, 200);
    const second = await ban(s.httpUrl, sub, 50);
    assert.equal(second.status, 200);
    assert.equal(second.until, first.until, 'the reply names the end that stands');
    await sleep(120);
    const client = openClient(s.url);
    clients.push(client);
    await client.opened;
    client.send({ type: 'auth', token: await token({ sub }) });
    const reply = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
    assert.equal(reply.type, 'auth_failure', 'the 1 h ban still holds');
    assert.equal(reply.reason, 'banned');
  } finally {
    await closeAll(...clients);
    await s.close();
  }
});
