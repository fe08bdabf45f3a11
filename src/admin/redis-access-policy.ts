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

export class RedisAccessPolicy implements AccessPolicy {
  constructor(
    /** Shared client (not closed here). */
    private readonly client: Redis,
    private readonly prefix: string,
  ) {}

  async isDenied(identity: Identity): Promise<Denial | undefined> {
    const keys = [this.banKey(userKeyOf(identity))];
    // A revocation made before revocations had a tenant (`admin:rev:<jti>`) still holds, for every
    // tenant, until it expires: an upgrade must not let a revoked token back in.
    if (identity.jti !== undefined) keys.push(this.revKey({ tenantId: identity.tenantId, jti: identity.jti }), `${this.prefix}admin:rev:${identity.jti}`);
    const [ban, ...revoked] = await this.client.mget(...keys);
    if (ban !== null && ban !== undefined) return 'banned';
    if (revoked.some((r) => r !== null && r !== undefined)) return 'revoked';
    return undefined;
  }

  async ban(userKey: string, until: number): Promise<void> {
    await this.client.set(this.banKey(userKey), String(until), 'PXAT', until);
  }

  async unban(userKey: string): Promise<boolean> {
    return (await this.client.del(this.banKey(userKey))) > 0;
  }

  async revoke(token: RevokedToken, until: number): Promise<void> {
    await this.client.set(this.revKey(token), String(until), 'PXAT', until);
  }

  async close(): Promise<void> {}

  private banKey(userKey: string): string {
    return `${this.prefix}admin:ban:${userKey}`;
  }

  private revKey(token: RevokedToken): string {
    return `${this.prefix}admin:revoked:${revokedTokenKey(token)}`;
  }
}
