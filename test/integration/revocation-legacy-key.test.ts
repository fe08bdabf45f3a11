/**
 * The rolling-upgrade revocation key `admin:rev:<jti>` (read by nodes of the previous build, which
 * refuse that jti in every tenant: too much, never too little — docs/operations.md, Upgrading) lasts
 * until the latest end written: it was set with NX, so a first revocation with an early exp fixed
 * its end and a later, longer one did not extend it. Its value is still never narrowed.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { RedisAccessPolicy } from '../../src/admin/redis-access-policy.js';
import { REDIS_URL, dropRedisPrefix, uniqueRedisPrefix } from '../helpers/harness.js';

const prefix = uniqueRedisPrefix('rev-legacy-rev');
const redis = new Redis(REDIS_URL, { lazyConnect: true });

after(async () => {
  await dropRedisPrefix(redis, prefix);
  redis.disconnect();
});

test('the legacy admin:rev:<jti> key written for old nodes is not shortened by an earlier revocation', async () => {
  await redis.connect();
  const policy = new RedisAccessPolicy(redis, prefix);
  const longEnd = Date.now() + 3_600_000;
  // A short-lived token of tenant acme revoked first, then a long-lived one carrying the same jti.
  await policy.revoke({ tenantId: 'acme', jti: 'legacy-jti' }, Date.now() + 60_000);
  await policy.revoke({ tenantId: 'acme', jti: 'legacy-jti' }, longEnd);
  // The tenant key (this build) keeps the later end…
  assert.ok(Number(await redis.get(`${prefix}admin:revoked:acme|legacy-jti`)) >= longEnd);
  // …the key the not-yet-upgraded nodes read must too.
  const legacyTtl = await redis.pttl(`${prefix}admin:rev:legacy-jti`);
  assert.ok(legacyTtl > 3_000_000, `admin:rev:legacy-jti expires in ${legacyTtl} ms: old nodes let the long-lived revoked token back in after 60 s`);
});
