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
