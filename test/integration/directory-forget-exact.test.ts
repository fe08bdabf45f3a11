/**
 * RedisSessionDirectory.forgetNodes drops the entries of exactly the nodes named: node ids are free
 * form (an embedding passes `nodeId`) and session ids are `<nodeId>:<local id>`, so matching fields
 * by the prefix `<nodeId>:` dropped live node `a:b`'s entries with dead node `a`'s. Each entry's
 * descriptor names its node; that is compared now.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { RedisSessionDirectory } from '../../src/admin/redis-session-directory.js';
import { REDIS_URL, dropRedisPrefix, uniqueRedisPrefix } from '../helpers/harness.js';

test('forgetNodes([a]) keeps the entries of live node "a:b"', { timeout: 10_000 }, async () => {
  const prefix = uniqueRedisPrefix('v1-forget');
  const redis = new Redis(REDIS_URL);
  const client = new Redis(REDIS_URL);
  const directory = new RedisSessionDirectory({
    client,
    prefix,
    nodeId: 'c',
    local: { all: () => [] } as never,
    retryMs: 60_000,
    onError: () => {},
  });
  try {
    const key = `${prefix}admin:sessions:default:u1`;
    const entry = (node: string, id: string): string => JSON.stringify({ sessionId: `${node}:${id}`, node, ip: '127.0.0.1', since: 1 });
    await redis.hset(key, 'a:1', entry('a', '1'), 'a:b:2', entry('a:b', '2'));
    await directory.forgetNodes(['a']);
    const fields = (await redis.hkeys(key)).sort();
    // Expected: only the dead node's entry is dropped. Actual: ['a:b:2'] is gone too.
    assert.deepEqual(fields, ['a:b:2']);
  } finally {
    await directory.close();
    await dropRedisPrefix(redis, prefix);
    redis.disconnect();
    client.disconnect();
  }
});
