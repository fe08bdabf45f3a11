/**
 * Revoking a tenant's `jti` again with an earlier end never shortens the revocation already there:
 * a `jti` is unique per issuer only, so another token of the tenant may be revoked under the same
 * key with an earlier `exp` — the first token must stay refused until its own (docs/operations.md:
 * a revoked token is refused until its `exp`). Both policies: memory and Redis. Before, the second
 * revocation overwrote the first's end and the long-lived token got back in.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { MemoryAccessPolicy, type AccessPolicy } from '../../src/admin/access-policy.js';
import { RedisAccessPolicy } from '../../src/admin/redis-access-policy.js';
import { REDIS_URL, dropRedisPrefix, uniqueRedisPrefix } from '../helpers/harness.js';

const prefix = uniqueRedisPrefix('revoke-extend');
const redis = new Redis(REDIS_URL, { lazyConnect: true });

after(async () => {
  await dropRedisPrefix(redis, prefix);
});

async function check(policy: AccessPolicy): Promise<void> {
  const userId = randomUUID();
  const identity = { userId, tenantId: 'acme', role: 'user', expiresAt: Date.now() + 3_600_000, jti: 'shared-jti' };
  await policy.revoke({ tenantId: 'acme', jti: 'shared-jti' }, Date.now() + 3_600_000);
  assert.equal(await policy.isDenied(identity), 'revoked');
  // Another issuer's token with the same jti, revoked with an exp already passed.
  await policy.revoke({ tenantId: 'acme', jti: 'shared-jti' }, Date.now() - 1);
  assert.equal(await policy.isDenied(identity), 'revoked', 'the longer revocation still holds');
  // A longer one does extend it.
  await policy.revoke({ tenantId: 'acme', jti: 'other-jti' }, Date.now() + 1000);
  await policy.revoke({ tenantId: 'acme', jti: 'other-jti' }, Date.now() + 3_600_000);
  assert.equal(await policy.isDenied({ ...identity, jti: 'other-jti' }), 'revoked');
}

test('memory policy: a second, earlier revocation of a jti does not shorten the first', async () => {
  await check(new MemoryAccessPolicy());
});

test('Redis policy: a second, earlier revocation of a jti does not shorten the first', async () => {
  await redis.connect();
  const policy = new RedisAccessPolicy(redis, prefix);
  await check(policy);
  const ends = Number(await redis.get(`${prefix}admin:revoked:acme|shared-jti`));
  assert.ok(ends > Date.now() + 3_000_000, 'the key keeps the later end');
});
