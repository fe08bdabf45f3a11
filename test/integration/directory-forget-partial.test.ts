/**
 * RedisSessionDirectory.forgetNodes drops a dead node's entries step by step (one script per SCAN
 * step); each step marks the node pruned with what it dropped. The marker used to be set only after
 * the whole SCAN, so a step that failed left entries dropped and no marker: a node that was only
 * stalled never wrote its entries back (docs/operations.md: it finds the marker the pruning left).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { RedisSessionDirectory } from '../../src/admin/redis-session-directory.js';
import { REDIS_URL, dropRedisPrefix, uniqueRedisPrefix } from '../helpers/harness.js';

test('a forgetNodes that fails midway leaves the pruned marker for what it dropped', { timeout: 30_000 }, async () => {
  const prefix = uniqueRedisPrefix('w1-forget-partial');
  const redis = new Redis(REDIS_URL);
  const client = new Redis(REDIS_URL);
  const directory = new RedisSessionDirectory({ client, prefix, nodeId: 'b', local: { all: () => [] } as never, retryMs: 60_000, onError: () => {} });
  try {
    // More user hashes than one SCAN step (FORGET_SCAN = 500) covers: several script calls.
    const p = redis.pipeline();
    for (let i = 0; i < 1200; i++) {
      const d = { sessionId: `y:${i}`, node: 'y', ip: '127.0.0.1', since: 1 };
      p.hset(`${prefix}admin:sessions:default:u${i}`, d.sessionId, JSON.stringify(d));
    }
    await p.exec();
    // The second script call runs on the server, but its reply times out on the client.
    const scripts = client as unknown as { rampartAdminForgetNodes: (...a: unknown[]) => Promise<number> };
    const real = scripts.rampartAdminForgetNodes.bind(client);
    let calls = 0;
    scripts.rampartAdminForgetNodes = async (...a: unknown[]) => {
      const n = await real(...a);
      if (++calls === 2) throw new Error('Command timed out');
      return n;
    };
    await assert.rejects(directory.forgetNodes(['y']));
    let left = 0;
    for (let i = 0; i < 1200; i++) left += await redis.hlen(`${prefix}admin:sessions:default:u${i}`);
    assert.ok(left < 1200, 'precondition: some of y\'s entries were dropped');
    const marker = await redis.exists(`${prefix}admin:sessions-pruned:y`);
    assert.equal(marker, 1, `${1200 - left} of y's entries dropped, and no pruned marker: y never writes them back`);
  } finally {
    await directory.close();
    await dropRedisPrefix(redis, prefix);
    redis.disconnect();
    client.disconnect();
  }
});
