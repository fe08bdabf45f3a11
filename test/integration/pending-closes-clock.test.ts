/**
 * A disconnect or `end_session` kept for a node cut from Redis (admin.pendingCloseMs) applies to
 * the sessions opened before it — judged on one clock. Before, the issuing node's clock stamped the
 * close and the holding node's clock stamped its sessions: with the holding node S ms ahead, a
 * session opened up to S before the disconnect survived it (on exactly the node that missed the
 * pub/sub command); S behind, a session opened up to S after it was closed by mistake. The close
 * is now stamped with Redis's clock and the sessions' start moved onto it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { REDIS_URL, dropRedisPrefix, newUserId, uniqueRedisPrefix } from '../helpers/harness.js';
import { PendingCloses } from '../../src/admin/pending-closes.js';

const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
const prefix = uniqueRedisPrefix('pending-clock');

after(async () => {
  await dropRedisPrefix(redis, prefix);
  redis.disconnect();
});

/** Node A's admin call disconnects every session of a user; node B, `skewMs` off, then checks one that began `beganMs` from now (true time). */
async function check(skewMs: number, beganMs: number): Promise<string | undefined> {
  const userKey = `default:${newUserId()}`;
  const nodeB = (): number => Date.now() + skewMs;
  const addedAt = nodeB() + beganMs;
  await new PendingCloses(redis, prefix, 60_000).remember({ kind: 'close', cause: 'admin', userKey });
  const due = await new PendingCloses(redis, prefix, 60_000, nodeB).due([{ id: `b:${userKey}`, userKey, addedAt }]);
  return due.get(`b:${userKey}`);
}

test('a session opened before the disconnect is closed though its node runs 3 s ahead', async () => {
  assert.equal(await check(3000, -1000), 'admin');
});

test('a session opened after the disconnect is kept though its node runs 3 s behind', async () => {
  assert.equal(await check(-3000, 1000), undefined);
});

test('without skew: before is closed, after is kept', async () => {
  assert.equal(await check(0, -1000), 'admin');
  assert.equal(await check(0, 1000), undefined);
});
