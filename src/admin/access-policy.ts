/**
 * Who may not authenticate: banned users (for a duration) and revoked tokens (by tenant and `jti`,
 * until the token's own expiry: a `jti` is unique only per issuer, so a revocation in one tenant
 * must not refuse another tenant's token that happens to carry the same id). Checked at `auth` and on refresh (src/pipeline/authenticate.ts). Memory
 * adapter for one node here; `redis-access-policy.ts` shares the lists across the cluster.
 */
import type { Identity } from '../auth/token-verifier.js';
import { userKeyOf } from '../chat/authorization.js';

export type Denial = 'banned' | 'revoked';

/** A revoked token: its tenant and `jti`. */
export interface RevokedToken {
  tenantId: string;
  jti: string;
}

/** One key per revoked token; `|` cannot occur in a tenant, so no two tokens share a key. */
export const revokedTokenKey = (t: RevokedToken): string => `${t.tenantId}|${t.jti}`;

export interface AccessPolicy {
  /** Why `identity` may not authenticate now, or undefined when it may. May reject (backend down). */
  isDenied(identity: Identity): Promise<Denial | undefined>;
  /**
   * Bans `userKey` (`tenant:userId`) until `until` (ms since epoch), never shortening a ban in force
   * (lifting one early takes `unban`). Resolves to the end that stands: the later of the two.
   */
  ban(userKey: string, until: number): Promise<number>;
  /** True when a ban was lifted. */
  unban(userKey: string): Promise<boolean>;
  /** Revokes the tenant's token with this `jti` until `until` (its `exp`, ms since epoch). */
  revoke(token: RevokedToken, until: number): Promise<void>;
  close(): Promise<void>;
}

/** Expiring entries: looked up lazily, swept when the map grows (no timer). */
export class ExpiringSet {
  private readonly until = new Map<string, number>();
  private sweepAt = 1024;

  add(key: string, until: number): void {
    this.until.set(key, until);
    if (this.until.size >= this.sweepAt) {
      const now = Date.now();
      for (const [k, t] of this.until) if (t <= now) this.until.delete(k);
      this.sweepAt = Math.max(1024, this.until.size * 2);
    }
  }

  /** `add`, never shortening an entry that lasts longer (a revocation holds until its latest end). */
  extend(key: string, until: number): void {
    const t = this.until.get(key);
    if (t === undefined || t < until) this.add(key, until);
  }

  /** When the entry for `key` ends, if it is still in force. */
  endOf(key: string): number | undefined {
    return this.has(key) ? this.until.get(key) : undefined;
  }

  has(key: string): boolean {
    const t = this.until.get(key);
    if (t === undefined) return false;
    if (t > Date.now()) return true;
    this.until.delete(key);
    return false;
  }

  delete(key: string): boolean {
    const had = this.has(key);
    this.until.delete(key);
    return had;
  }
}

export class MemoryAccessPolicy implements AccessPolicy {
  private readonly bans = new ExpiringSet();
  private readonly revoked = new ExpiringSet();

  async isDenied(identity: Identity): Promise<Denial | undefined> {
    if (this.bans.has(userKeyOf(identity))) return 'banned';
    if (identity.jti !== undefined && this.revoked.has(revokedTokenKey({ tenantId: identity.tenantId, jti: identity.jti }))) return 'revoked';
    return undefined;
  }

  async ban(userKey: string, until: number): Promise<number> {
    this.bans.extend(userKey, until);
    return this.bans.endOf(userKey) ?? until;
  }

  async unban(userKey: string): Promise<boolean> {
    return this.bans.delete(userKey);
  }

  async revoke(token: RevokedToken, until: number): Promise<void> {
    // A jti is unique per issuer only: another token of the tenant revoked under it with an
    // earlier exp must not let the first one back in.
    this.revoked.extend(revokedTokenKey(token), until);
  }

  async close(): Promise<void> {}
}
