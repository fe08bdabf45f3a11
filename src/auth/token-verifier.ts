/**
 * JWT verification with jose. Algorithms are an explicit allowlist, so `alg: none` and HS/RS
 * confusion cannot happen (a public key is never accepted as an HMAC secret). `exp` and a UUID
 * `sub` are required; `nbf`, `iss`, `aud` are checked when present or configured; the `typ` header
 * must be one of `types` (so a refresh or ID token is not an access token).
 */
import { decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions, type JWTVerifyResult } from 'jose';
import type { KeyObject } from 'node:crypto';
import { fetchFailed, type KeySource } from './key-source.js';
import { isHmacAlgorithm, verifyHmacJwt } from './hmac-jwt.js';
import { AuthFailureReason, type AuthFailureReasonValue } from '../protocol/reasons.js';

/**
 * Three non-empty parts of the base64url alphabet, no padding, none of a length no encoding has
 * (1 mod 4). RFC 7515 §5.2 forbids whitespace and other characters; the decoders (jose's, `atob`)
 * skip them, so without this one token could be spelled any number of ways, each authenticating —
 * whatever keys on the token string (a cache, a deny-list, a proxy revoking by token hash) sees a
 * new token each time.
 */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
export function isCompactJws(token: string): boolean {
  if (!COMPACT_JWS.test(token)) return false;
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  if (first % 4 === 1 || (second - first - 1) % 4 === 1 || (token.length - second - 1) % 4 === 1) return false;
  // The signature's last character may carry unused bits: only the spelling with them zero. (The
  // header and payload are signed as spelled, so another spelling of them fails the signature.)
  const signature = token.slice(second + 1);
  return Buffer.from(signature, 'base64url').toString('base64url') === signature;
}

export interface Identity {
  userId: string;
  role: string | undefined;
  /** Tenant from the `tid` claim; one tenant ("default") without it. */
  tenantId: string;
  /** Token expiry, ms since epoch. */
  expiresAt: number;
  /** The `jwt` `jti` claim when present: what an operator revokes a token by. */
  jti?: string;
}

export type VerifyResult = { ok: true; identity: Identity } | { ok: false; reason: AuthFailureReasonValue };

export interface TokenVerifierOptions {
  keySource: KeySource;
  algorithms?: string[];
  issuer?: string;
  audience?: string;
  clockTolerance: number;
  maxTokenLength: number;
  /** Allowed `typ` header values (case-insensitive, `application/` prefix ignored); default `JWT`, `at+jwt`. */
  types?: string[];
  /** Refuse a token without `typ` (default: allowed). */
  requireType?: boolean;
  /**
   * The tenants this key may speak for (a token naming another `tid`, or none when `default` is not
   * listed, is `invalid_token`). Default: any. With several issuers, this is what stops one of them
   * minting tokens for another's users: the user key is `tid:sub`, whoever signed.
   */
  tenants?: readonly string[];
  /**
   * A token whose `exp` lies further ahead than this (ms) is `invalid_token`: every token the
   * server accepts can then be revoked (a revocation is kept until the token's `exp`).
   */
  maxLifetimeMs?: number;
  /**
   * HS* tokens with a shared secret are checked synchronously with node:crypto (src/auth/hmac-jwt.ts),
   * making jose's decisions; `false` sends them through jose instead (the equivalence tests use both).
   */
  hmacFastPath?: boolean;
  /** The clock, ms since the epoch (tests); `Date.now` by default. */
  now?: () => number;
}

export const DEFAULT_TOKEN_TYPES = ['JWT', 'at+jwt'];

/** RFC 7515 §4.1.9: media types compare case-insensitively and may omit `application/`. */
export const normalizeType = (typ: string): string => typ.toLowerCase().replace(/^application\//, '');

/** Whether a protected header's `typ` is acceptable. */
export function typeAllowed(typ: unknown, allowed: ReadonlySet<string>, requireType: boolean): boolean {
  if (typ === undefined) return !requireType;
  return typeof typ === 'string' && allowed.has(normalizeType(typ));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const CLAIM_VALUE = /^[A-Za-z0-9_.:-]{1,64}$/;
/** `jti`: printable ASCII, bounded (it becomes part of a revocation key). */
const JTI_VALUE = /^[\x21-\x7e]{1,255}$/;

/** User ids are UUIDs (the JWT `sub`). */
export const isUserId = (value: string): boolean => UUID.test(value);
export const DEFAULT_TENANT = 'default';

export type TokenVerifier = (token: string) => Promise<VerifyResult>;

/**
 * The JWKS endpoint could not be read (network error, timeout, non-200, not JSON, not a key
 * set): the token was not judged, so this is `unavailable` — not a failed authentication that
 * counts towards the IP lockout. An unknown `kid` or a bad signature is the client's fault.
 */
function keySetUnreachable(err: unknown): boolean {
  // A `kid` not in the set even after the (rate-limited) refetch: most likely a key rotation the
  // cached set has not caught up with yet, so the user must not be counted towards the lockout.
  return err instanceof errors.JWKSNoMatchingKey || fetchFailed(err);
}

/**
 * A token without `kid` matches every key of its type in the set: during a rotation there are two,
 * and jose leaves trying each to the caller (`JWKSMultipleMatchingKeys` iterates them). The first
 * that verifies wins; if none does, the last failure stands.
 */
async function verifyWithKeySet(token: string, getKey: JWTVerifyGetKey, opts: JWTVerifyOptions): Promise<JWTVerifyResult> {
  try {
    return await jwtVerify(token, getKey, opts);
  } catch (err) {
    if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
    let last: unknown = err;
    for await (const candidate of err as unknown as AsyncIterable<CryptoKey | KeyObject>) {
      try {
        return await jwtVerify(token, candidate, opts);
      } catch (e) {
        if (!(e instanceof errors.JWSSignatureVerificationFailed)) throw e; // a claim, not the key, was refused
        last = e;
      }
    }
    throw last;
  }
}

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const { keySource } = options;
  const algorithms = options.algorithms ?? keySource.defaultAlgorithms;
  // HMAC only with a shared secret, and never with a public key: an allowlist that mixes them is
  // the HS/RS confusion attack waiting to happen, so it is refused at start-up.
  const wrong = algorithms.filter((alg) => alg.startsWith('HS') !== (keySource.kind === 'secret'));
  if (algorithms.length === 0 || wrong.length > 0) {
    throw new Error(`jwt.algorithms: ${wrong.join(', ') || '(none)'} cannot be used with a ${keySource.kind.replace('_', ' ')} key`);
  }
  const now = options.now ?? Date.now;
  const tenants = options.tenants === undefined ? undefined : new Set(options.tenants);
  const verifyOptions = {
    algorithms,
    clockTolerance: options.clockTolerance,
    requiredClaims: ['exp', 'sub'],
    ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
    ...(options.audience !== undefined ? { audience: options.audience } : {}),
  };
  const types = new Set((options.types ?? DEFAULT_TOKEN_TYPES).map(normalizeType));
  const requireType = options.requireType ?? false;
  const invalid: VerifyResult = { ok: false, reason: AuthFailureReason.INVALID_TOKEN };
  const unavailable: VerifyResult = { ok: false, reason: AuthFailureReason.UNAVAILABLE };

  const hmac =
    options.hmacFastPath !== false && keySource.kind === 'secret' && algorithms.every(isHmacAlgorithm)
      ? {
          secret: (keySource.key as KeyObject).export(),
          options: {
            algorithms: new Set(algorithms),
            requiredClaims: verifyOptions.requiredClaims,
            issuer: options.issuer,
            audience: options.audience,
            clockTolerance: options.clockTolerance,
          },
        }
      : undefined;

  const headerAllowed = (header: Record<string, unknown>): boolean => typeAllowed(header.typ, types, requireType);

  return async (token) => {
    if (token.length > options.maxTokenLength) return { ok: false, reason: AuthFailureReason.TOKEN_TOO_LARGE };
    if (!isCompactJws(token)) return invalid;
    if (hmac !== undefined) {
      // One header decode: the `typ` rule is judged on it before the MAC (every refusal here is `invalid_token`).
      const outcome = verifyHmacJwt(token, hmac.secret, hmac.options, Math.floor(now() / 1000), headerAllowed);
      if (!outcome.ok) return outcome.expired ? { ok: false, reason: AuthFailureReason.TOKEN_EXPIRED } : invalid;
      return identityOf(outcome.payload);
    }
    let payload: JWTPayload;
    try {
      // Judged before any key is fetched; refusing on an unverified header is safe.
      if (!typeAllowed(decodeProtectedHeader(token).typ, types, requireType)) return invalid;
    } catch {
      return invalid;
    }
    try {
      const opts = options.now !== undefined ? { ...verifyOptions, currentDate: new Date(now()) } : verifyOptions;
      const result =
        typeof keySource.key === 'function'
          ? await verifyWithKeySet(token, keySource.key, opts)
          : await jwtVerify(token, keySource.key as KeyObject, opts);
      payload = result.payload;
    } catch (err) {
      if (err instanceof errors.JWTExpired) return { ok: false, reason: AuthFailureReason.TOKEN_EXPIRED };
      if (keySource.kind === 'jwks' && keySetUnreachable(err)) return unavailable;
      return invalid;
    }
    return identityOf(payload);
  };

  /** Rampart's own claim rules, the same whichever path verified the token. */
  function identityOf(payload: JWTPayload): VerifyResult {
    const { sub, role, tid, exp, jti } = payload as JWTPayload & { role?: unknown; tid?: unknown };
    if (typeof sub !== 'string' || !UUID.test(sub) || typeof exp !== 'number') return invalid;
    if (role !== undefined && (typeof role !== 'string' || !CLAIM_VALUE.test(role))) return invalid;
    if (tid !== undefined && (typeof tid !== 'string' || !CLAIM_VALUE.test(tid))) return invalid;
    if (tenants !== undefined && !tenants.has(tid ?? DEFAULT_TENANT)) return invalid;
    if (options.maxLifetimeMs !== undefined && exp * 1000 > now() + options.maxLifetimeMs + options.clockTolerance * 1000) return invalid;
    if (jti !== undefined && (typeof jti !== 'string' || !JTI_VALUE.test(jti))) return invalid;
    return {
      ok: true,
      identity: { userId: sub.toLowerCase(), role, tenantId: tid ?? DEFAULT_TENANT, expiresAt: exp * 1000, ...(jti !== undefined ? { jti } : {}) },
    };
  }
}
