/**
 * The connection registry's restore path (an acquire that finds its own liveness key gone writes
 * the node's counts back first, src/limits/redis-registry.ts acquire()/restore()).
 *
 * docs/operations.md: "connection counts are written back by the next acquire or heartbeat that
 * finds the node's liveness key gone". The count written back must be the node's real count:
 * neither one lower (a limit admitting one more session for good) nor one higher (a slot held
 * forever that no release gives back).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisConnectionRegistry } from '../../src/limits/redis-registry.js';
import { FAIL_FAST_REDIS_OPTIONS } from '../../src/limits/redis-health.js';
import { deleteRedisPrefix } from '../helpers/harness.js';

const REDIS_URL = process.env.RAMPART_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

async function connect(): Promise<Redis> {
  const client = new Redis(REDIS_URL, { ...FAIL_FAST_REDIS_OPTIONS, lazyConnect: true, retryStrategy: () => null });
  client.on('error', () => {});
  await client.connect();
  return client;
}


type Hb = (key: string, value: string, px: number) => Promise<number>;

test('a restore that fails does not drop one of the node\'s own slots from its count', { timeout: 20_000 }, async () => {
  // Expected: the node holds one session of user u; after Redis lost its keys and a restore
  // failed once (a Redis error), the count written back is still 1, so acquireUser(u, 1) is refused.
  // Actual: acquire() bumps the mirror down before restore() and again in its catch, so the mirror
  // reads 0 and the next write-back deletes the node's field: a second session is admitted.
  const prefix = `rampart-test:registry-restore:${randomUUID()}`;
  const admin = await connect();
  const client = await connect();
  const reg = new RedisConnectionRegistry({ client, keyPrefix: prefix, nodeId: 'n1', livenessMs: 60_000, heartbeatMs: 3_600_000 });
  try {
    assert.equal(await reg.ready(), true);
    assert.equal(await reg.acquireUser('u', 1), true, 'the first session of u');
    assert.equal(await reg.acquireUser('u', 1), false, 'control: the limit holds');
    await deleteRedisPrefix(admin, prefix);
    const c = client as unknown as { rampartRegHeartbeat: Hb };
    const original = c.rampartRegHeartbeat;
    let failOnce = true;
    c.rampartRegHeartbeat = function (this: unknown, ...args: Parameters<Hb>) {
      if (failOnce) {
        failOnce = false;
        return Promise.reject(new Error('simulated Redis error during the restore'));
      }
      return original.apply(this, args);
    } as Hb;
    await assert.rejects(reg.acquireUser('u', 1), 'the restore failed: the acquire fails closed');
    // The next acquire (another user) restores liveness and writes every count back from the mirror.
    assert.equal(await reg.acquireUser('other', 5), true);
    assert.equal(await reg.countUser('u'), 1, 'u still holds its one session on this node');
    assert.equal(await reg.acquireUser('u', 1), false, 'a second session of u over maxConnectionsPerUser 1 is refused');
  } finally {
    await reg.close();
    await deleteRedisPrefix(admin, prefix);
    client.disconnect();
    admin.disconnect();
  }
});

test('an acquire refused while a restore is writing counts back leaves no phantom slot', { timeout: 20_000 }, async () => {
  // Expected: node n2 holds user b's only slot (max 1); n1's acquire of b is refused (0) and
  // takes nothing, so once n2 releases, b can connect again (count 0).
  // Actual: restore() -> resync(true) writes n1's mirror, which already counts the refused
  // acquire optimistically (bump +1 before the reply); the refusal then lowers the mirror only,
  // so Redis keeps n1:1 for b with no session behind it — b is refused for good (until the next lapse).
  const prefix = `rampart-test:registry-restore:${randomUUID()}`;
  const admin = await connect();
  const c1 = await connect();
  const c2 = await connect();
  const n1 = new RedisConnectionRegistry({ client: c1, keyPrefix: prefix, nodeId: 'n1', livenessMs: 60_000, heartbeatMs: 3_600_000 });
  const n2 = new RedisConnectionRegistry({ client: c2, keyPrefix: prefix, nodeId: 'n2', livenessMs: 60_000, heartbeatMs: 3_600_000 });
  try {
    assert.equal(await n1.ready(), true);
    assert.equal(await n2.ready(), true);
    assert.equal(await n1.acquireUser('a', 5), true);
    assert.equal(await n2.acquireUser('b', 1), true);
    await deleteRedisPrefix(admin, prefix);
    // n2 writes its counts back (its own restore) through an acquire of another user.
    assert.equal(await n2.acquireUser('z', 5), true);
    assert.equal(await n2.countUser('b'), 1, 'control: n2 holds b again');
    // A connection of b reaches n1 while n1 restores (its heartbeat is on the wire).
    const c = c1 as unknown as { rampartRegHeartbeat: Hb };
    const original = c.rampartRegHeartbeat;
    let concurrent: Promise<boolean> | undefined;
    c.rampartRegHeartbeat = function (this: unknown, ...args: Parameters<Hb>) {
      const p = original.apply(this, args);
      concurrent ??= n1.acquireUser('b', 1);
      return p;
    } as Hb;
    assert.equal(await n1.acquireUser('a', 5), true, 'the acquire that triggers the restore');
    assert.ok(concurrent !== undefined);
    assert.equal(await concurrent, false, 'b is at its limit (held on n2)');
    c.rampartRegHeartbeat = original;
    assert.equal(await n2.countUser('b'), 1, 'only n2\'s session of b counts');
    await n2.releaseUser('b');
    assert.equal(await n2.acquireUser('b', 1), true, 'b connects again once its only session left');
  } finally {
    await n1.close();
    await n2.close();
    await deleteRedisPrefix(admin, prefix);
    c1.disconnect();
    c2.disconnect();
    admin.disconnect();
  }
});
