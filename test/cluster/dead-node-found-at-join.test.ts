/**
 * A node that finds a dead peer's membership lapsed in its joining heartbeat (the bus joins before
 * session control exists) still drops the dead peer's session-directory entries once session
 * control is open (src/admin/dead-nodes.ts). Typical case: a lone node kill -9'd and restarted more
 * than `limits.nodeLivenessMs` later. Before, the cleanup was skipped and no other node ever heard
 * of the id again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { REDIS_URL, dropRedisPrefix, newUserId, startServer, uniqueRedisPrefix, waitFor, type TestServer } from '../helpers/harness.js';

test('a dead node found lapsed by a joining node has its directory entries dropped', { timeout: 20_000 }, async () => {
  const prefix = uniqueRedisPrefix('v1-join');
  const redis = new Redis(REDIS_URL);
  const dead = 'v1-dead-node';
  const key = `${prefix}admin:sessions:default:${newUserId()}`;
  let server: TestServer | undefined;
  try {
    // A node killed long ago: its membership lapsed (score in the past), its entry still there.
    await redis.zadd(`${prefix}ctl:nodes`, Date.now() - 60_000, dead);
    await redis.hset(key, `${dead}:s1`, JSON.stringify({ sessionId: `${dead}:s1`, node: dead, ip: '127.0.0.1', since: 1 }));
    server = await startServer({ redisUrl: REDIS_URL, redisKeyPrefix: prefix, limits: { nodeLivenessMs: 1500 } });
    // The joining heartbeat removed it and announced the death.
    assert.equal(await redis.zscore(`${prefix}ctl:nodes`, dead), null, 'the lapsed member was removed');
    assert.ok(server.logs.some((l) => l.includes('cluster nodes lapsed')), 'the death was announced');
    // Nobody else will ever see this id lapse again: the entry must go now (a few heartbeats' time).
    let left: string[] = [];
    await waitFor(async () => (left = await redis.hkeys(key)).length === 0, 3000, 'the dead node\'s entry dropped').catch(() => {});
    assert.deepEqual(left, [], 'the dead node\'s directory entry stays in Redis for good');
  } finally {
    await server?.close();
    await dropRedisPrefix(redis, prefix);
    redis.disconnect();
  }
});
