/**
 * u1 probe: the rolling-upgrade revocation key `admin:rev:<jti>` is still shortened.
 *
 * docs/operations.md (Upgrading): "During a rolling upgrade this build also writes `admin:rev:<jti>`
 * for the nodes not yet upgraded, which refuse that jti in every tenant ... until they are: too
 * much, never too little." c84baf6 made the tenant key never shortened (Lua compare), but the
 * legacy key is written with SET ... NX (src/admin/redis-access-policy.ts:66): a first revocation
 * with an early exp fixes its end, and a later revocation of the same jti with a later exp does not
 * extend it. A node of the previous build (reads only `admin:rev:<jti>`) lets the long-lived
 * revoked token back in once the first end passes: too little.
 * Expected: admin:rev:<jti> lasts until the latest end written. Actual: it keeps the first (short) one.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { RedisAccessPolicy } from '../../src/admin/redis-access-policy.js';
import { REDIS_URL, dropRedisPrefix, uniqueRedisPrefix } from '../helpers/harness.js';

const prefix = uniqueRedisPrefix('u1-legacy-rev');
const redis = new Redis(REDIS_URL, { lazyConnect: true });

after(async () => {
  await dropRedisPrefix(redis, prefix);
  redis.disconnect();
});

test('u1: the legacy admin:rev:<jti> key written for old nodes is not shortened by an earlier revocation', async () => {
  await redis.connect();
  const policy = new RedisAccessPolicy(redis, prefix);
  const longEnd = Date.now() + 3_600_000;
  // A short-lived token of tenant acme revoked first, then a long-lived one carrying the same jti.
  await policy.revoke({ tenantId: 'acme', jti: 'u1-jti' }, Date.now() + 60_000);
  await policy.revoke({ tenantId: 'acme', jti: 'u1-jti' }, longEnd);
  // The tenant key (this build) keeps the later end…
  assert.ok(Number(await redis.get(`${prefix}admin:revoked:acme|u1-jti`)) >= longEnd);
  // …the key the not-yet-upgraded nodes read must too.
  const legacyTtl = await redis.pttl(`${prefix}admin:rev:u1-jti`);
  assert.ok(legacyTtl > 3_000_000, `admin:rev:u1-jti expires in ${legacyTtl} ms: old nodes let the long-lived revoked token back in after 60 s`);
});
