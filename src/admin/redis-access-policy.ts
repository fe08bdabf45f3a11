/**
 * Cluster `AccessPolicy` on Redis: one key per ban (`<prefix>admin:ban:<tenant:user>`) and per
 * revoked token (`<prefix>admin:revoked:<tenant>|<jti>`), each expiring on its own (PXAT) when the ban ends or
 * the token would have expired anyway. Every node reads the same keys at `auth`, so a ban holds on
 * every node as soon as SET returns; open sessions are closed by the control channel.
 *
 * Redis unreachable: `isDenied` rejects and the authenticator answers `unavailable` (4503) — a
 * ban must not lapse because Redis blinked (fail closed, like the connection registry).
 */
import type { Redis } from 'ioredis';
import type { Identity } from '../auth/token-verifier.js';
import { userKeyOf } from '../chat/authorization.js';
import { revokedTokenKey, type AccessPolicy, type Denial, type RevokedToken } from './access-policy.js';

/** Sets the revocation to end at ARGV[1] unless it already ends later (the value is its end). */
const REVOKE_LUA = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if cur >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[1])
return 1
`;

/**
 * The key nodes of the previous build read (`admin:rev:<jti>`): written when missing, else only its
 * expiry extended to ARGV[1] — its value is never narrowed (one written by them holds for every
 * tenant), and it is never shortened.
 */
const LEGACY_REVOKE_LUA = `
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[1])
  return 1
end
if ttl == -1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now + ttl < tonumber(ARGV[1]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
  return 1
end
return 0
`;

/** Sets the ban to end at ARGV[1] unless it already ends later; returns the end that stands. */
const BAN_LUA = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if cur >= tonumber(ARGV[1]) then return tostring(cur) end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[1])
return ARGV[1]
`;

interface RevokeScript {
  rampartAdminBan(key: string, until: number): Promise<string>;
  rampartAdminRevoke(key: string, until: number): Promise<number>;
  rampartAdminLegacyRevoke(key: string, until: number, value: string): Promise<number>;
}

export class RedisAccessPolicy implements AccessPolicy {
  constructor(
    /** Shared client (not closed here). */
    private readonly client: Redis,
    private readonly prefix: string,
  ) {
    client.defineCommand('rampartAdminBan', { lua: BAN_LUA, numberOfKeys: 1 });
    client.defineCommand('rampartAdminRevoke', { lua: REVOKE_LUA, numberOfKeys: 1 });
    client.defineCommand('rampartAdminLegacyRevoke', { lua: LEGACY_REVOKE_LUA, numberOfKeys: 1 });
  }

  async isDenied(identity: Identity): Promise<Denial | undefined> {
    const keys = [this.banKey(userKeyOf(identity))];
    if (identity.jti !== undefined) keys.push(this.revKey({ tenantId: identity.tenantId, jti: identity.jti }), this.legacyRevKey(identity.jti));
    const [ban, revoked, legacy] = await this.client.mget(...keys);
    if (ban !== null && ban !== undefined) return 'banned';
    if (revoked !== null && revoked !== undefined) return 'revoked';
    // The key nodes before tenant-scoped revocations read (`admin:rev:<jti>`): written by them, it
    // holds for every tenant until it expires (an upgrade must not let a revoked token back in);
    // written by this build (`until|tenant`, for them during a rolling upgrade), for its tenant only.
    if (legacy !== null && legacy !== undefined) {
      const bar = legacy.indexOf('|');
      if (bar === -1 || legacy.slice(bar + 1) === identity.tenantId) return 'revoked';
    }
    return undefined;
  }

  async ban(userKey: string, until: number): Promise<number> {
    // Never shortened by a later, shorter ban (two operators, or an automated short ban landing on a manual long one).
    return Number(await (this.client as unknown as RevokeScript).rampartAdminBan(this.banKey(userKey), until));
  }

  async unban(userKey: string): Promise<boolean> {
    return (await this.client.del(this.banKey(userKey))) > 0;
  }

  async revoke(token: RevokedToken, until: number): Promise<void> {
    // A jti is unique per issuer only: never shortened by another token's earlier exp.
    await (this.client as unknown as RevokeScript).rampartAdminRevoke(this.revKey(token), until);
    // For nodes of the previous build in a rolling upgrade, which read only `admin:rev:<jti>` (and
    // refuse the jti in every tenant: too much, never too little). One written by them holds for
    // every tenant and must not be narrowed to this one; nor may an earlier end shorten it.
    await (this.client as unknown as RevokeScript).rampartAdminLegacyRevoke(this.legacyRevKey(token.jti), until, `${until}|${token.tenantId}`);
  }

  async close(): Promise<void> {}

  private banKey(userKey: string): string {
    return `${this.prefix}admin:ban:${userKey}`;
  }

  private legacyRevKey(jti: string): string {
    return `${this.prefix}admin:rev:${jti}`;
  }

  private revKey(token: RevokedToken): string {
    return `${this.prefix}admin:revoked:${revokedTokenKey(token)}`;
  }
}
