/**
 * Where tokens come from: a fixed token, or a `getToken()` callback asked again on every connect
 * (a rejected token is never retried) and before the open socket's token expires.
 */
export type TokenProvider = () => string | Promise<string>;

export interface RefreshOptions {
  /** Refresh this long before `exp` (ms). */
  marginMs: number;
  /** Never refresh sooner than this after getting a token (ms), so a short-lived token cannot spin. */
  minDelayMs: number;
}

export const DEFAULT_REFRESH: RefreshOptions = { marginMs: 30_000, minDelayMs: 1_000 };

export class TokenSource {
  private readonly provider: TokenProvider;
  /** A fixed token cannot be renewed: when it is refused or expires the client stops. */
  readonly renewable: boolean;

  constructor(token: string | TokenProvider) {
    this.renewable = typeof token === 'function';
    this.provider = typeof token === 'function' ? token : () => token;
  }

  async get(): Promise<string> {
    const token = await this.provider();
    if (typeof token !== 'string' || token.length === 0) throw new Error('getToken() returned no token');
    return token;
  }
}

/** A JWT's payload, read without verifying it (the server verifies); undefined if it is not one. */
function jwtPayload(token: string): Record<string, unknown> | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '='));
    const claims: unknown = JSON.parse(json);
    return typeof claims === 'object' && claims !== null ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The `exp` claim of a JWT in ms, read without verifying it (the server verifies); undefined if absent. */
export function tokenExpiry(token: string): number | undefined {
  const exp = jwtPayload(token)?.exp;
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
}

/** The `iat` claim of a JWT in ms, read without verifying it; undefined if absent. */
export function tokenIssuedAt(token: string): number | undefined {
  const iat = jwtPayload(token)?.iat;
  return typeof iat === 'number' && Number.isFinite(iat) ? iat * 1000 : undefined;
}

/**
 * What is left of a token's life (ms), as this device can tell; undefined without `exp`. With
 * `iat`, from the token alone: its lifetime (`exp − iat`, both set by the issuer's clock) less the
 * time since this client first saw it — a device clock ahead of or behind the issuer's changes
 * nothing. Without `iat`, `exp − now`: only right on a device clock that agrees with the issuer's.
 */
export function tokenRemainingMs(token: string, firstSeenAt: number, nowMs: number): number | undefined {
  const exp = tokenExpiry(token);
  if (exp === undefined) return undefined;
  const iat = tokenIssuedAt(token);
  if (iat === undefined || !(exp > iat)) return exp - nowMs;
  return exp - iat - Math.max(0, nowMs - firstSeenAt);
}

/** The longest wait between refreshes that bring no new life (ms). */
export const MAX_STALE_REFRESH_MS = 300_000;

/**
 * When to refresh the token in use. A refresh that brings no new life — a token whose `exp` is no
 * later than the previous one's (a provider handing out its cached token), or one that looks
 * expired already (a device clock ahead of the issuer's, a token without `iat`) — would be made
 * again every `minDelayMs`, each one an identity-provider round trip and an `auth` frame, for as
 * long as the connection lasts: such refreshes back off instead, doubling from `minDelayMs` up to
 * MAX_STALE_REFRESH_MS, until one brings a later, unexpired token.
 */
export class RefreshSchedule {
  /** The token in use and when this client first saw it (clock ms). */
  private seen: { token: string; at: number } | undefined;
  /** Refreshes in a row that brought no new life. */
  private stale = 0;

  constructor(private readonly o: RefreshOptions) {}

  /** A token from the provider: for a connection, or (`previous` given) the refresh of `previous`. */
  got(token: string, nowMs: number, previous?: string): void {
    if (this.seen?.token !== token) this.seen = { token, at: nowMs };
    const remaining = tokenRemainingMs(token, this.seen.at, nowMs);
    const expired = remaining !== undefined && remaining <= 0;
    if (previous === undefined) {
      // A connection's token that does not look expired starts over: a backoff longer than a
      // short-lived token's life would otherwise outlast every connection's token.
      if (!expired) this.stale = 0;
      return;
    }
    const exp = tokenExpiry(token);
    const before = tokenExpiry(previous);
    const noLater = exp !== undefined && before !== undefined && exp <= before;
    this.stale = noLater || expired ? this.stale + 1 : 0;
  }

  /** Ms until `token` should be refreshed; undefined when it has no `exp` (never refreshed). */
  delay(token: string, nowMs: number): number | undefined {
    const firstSeen = this.seen?.token === token ? this.seen.at : nowMs;
    const remaining = tokenRemainingMs(token, firstSeen, nowMs);
    if (remaining === undefined) return undefined;
    const delay = refreshDelay(nowMs + remaining, nowMs, this.o);
    if (this.stale === 0) return delay;
    return Math.max(delay, Math.min(MAX_STALE_REFRESH_MS, this.o.minDelayMs * 2 ** Math.min(this.stale, 30)));
  }
}

/**
 * The user a token names, as the server's `userId` has it (its `sub`, lowercased), read without
 * verifying it; undefined if absent. Tells, before `auth`, whose timeline a stored position must be in.
 */
export function tokenSubject(token: string): string | undefined {
  const sub = jwtPayload(token)?.sub;
  return typeof sub === 'string' && sub.length > 0 ? sub.toLowerCase() : undefined;
}

/** The tenant of a token without `tid`, as the server has it (src/auth/token-verifier.ts). */
const DEFAULT_TENANT = 'default';

/**
 * Who a token names, as the server tells users apart: its user is the tenant (the `tid` claim,
 * `default` without one) and the `sub` (lowercased, as the server's `userId`), whoever issued the
 * token — the same `sub` in two tenants is two users, with two timelines. Read without verifying
 * it (the server verifies); undefined without a `sub`. JSON text `[sub, tenant]`, compared as a
 * whole, never parsed back.
 */
export function tokenIdentity(token: string): string | undefined {
  const sub = tokenSubject(token);
  if (sub === undefined) return undefined;
  const tid = jwtPayload(token)?.tid;
  return JSON.stringify([sub, typeof tid === 'string' ? tid : DEFAULT_TENANT]);
}

/**
 * How long to wait before refreshing a token that expires at `expMs`: `marginMs` before it, but
 * not before half of its remaining life (a short-lived token), and never sooner than `minDelayMs`.
 */
export function refreshDelay(expMs: number, nowMs: number, o: RefreshOptions): number {
  const remaining = expMs - nowMs;
  const delay = Math.max(remaining - o.marginMs, Math.floor(remaining / 2));
  return Math.max(o.minDelayMs, delay);
}
