/**
 * A synchronous HS256/HS384/HS512 JWT check with node:crypto, for shared-secret keys.
 *
 * jose verifies HMAC through WebCrypto: every token imports the key again and hops to the
 * thread pool for the MAC — most of the cost of a handshake. This module makes the same
 * decisions in the same order as jose's `jwtVerify` (jose 6: compact JWS parse, `crit`/`b64`,
 * `alg` allowlist, signature, then `validateClaimsSet`), with `createHmac` and `timingSafeEqual`.
 * test/unit/hmac-jwt.test.ts runs the same tokens, including every refusal, through both.
 * Base64url decoding is jose's own (`base64url.decode`), so both accept exactly the same strings.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { base64url } from 'jose';

const HASH_OF: Readonly<Record<string, string>> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

/** The HMAC algorithms this path handles. */
export const isHmacAlgorithm = (alg: string): boolean => Object.hasOwn(HASH_OF, alg);

export interface HmacVerifyOptions {
  /** Accepted `alg` values (HS256/HS384/HS512 only). */
  algorithms: ReadonlySet<string>;
  /** Claims that must be present (own properties), as jose's `requiredClaims`. */
  requiredClaims: readonly string[];
  issuer?: string | undefined;
  audience?: string | undefined;
  /** Seconds. */
  clockTolerance: number;
}

/** `expired` is jose's `JWTExpired`; every other refusal is `invalid`. */
export type HmacOutcome = { ok: true; payload: Record<string, unknown> } | { ok: false; expired: boolean };

const INVALID: HmacOutcome = Object.freeze({ ok: false, expired: false }) as HmacOutcome;
const EXPIRED: HmacOutcome = Object.freeze({ ok: false, expired: true }) as HmacOutcome;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const ASCII = /^[\x00-\x7f]*$/;

/** jose's `isObject`: a plain object (prototype Object.prototype or null). */
function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Object.prototype.toString.call(v) !== '[object Object]') return false;
  const proto = Object.getPrototypeOf(v) as object | null;
  return proto === null || Object.getPrototypeOf(proto) === null;
}

/** base64url → UTF-8 → JSON → plain object, or undefined (jose's parseJoseHeader / claims parse). */
function decodeJsonObject(part: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(utf8.decode(decodeB64url(part)));
    return isPlainObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * jose's base64url decoding, with a fast path: a string of the base64url alphabet only, whose
 * length jose's decoder accepts (not 1 mod 4), decodes to the same bytes with Buffer. Anything
 * else (padding, whitespace, other characters) goes to jose's own decoder, so both accept and
 * refuse exactly the same strings.
 */
const B64URL = /^[A-Za-z0-9_-]*$/;
function decodeB64url(part: string): Uint8Array {
  if (part.length % 4 !== 1 && B64URL.test(part)) return Buffer.from(part, 'base64url');
  return base64url.decode(part);
}

function decodeBytes(part: string): Uint8Array | undefined {
  try {
    return decodeB64url(part);
  } catch {
    return undefined;
  }
}

/** jose's validateCrit + validateB64 for a compact JWS (protected header only): the `b64` value, or undefined when refused. */
function payloadEncoded(header: Record<string, unknown>): boolean | undefined {
  const crit = header.crit;
  if (crit === undefined) return true;
  if (!Array.isArray(crit) || crit.length === 0 || crit.some((p) => typeof p !== 'string' || p.length === 0)) return undefined;
  for (const p of crit as string[]) {
    if (p !== 'b64') return undefined; // the only extension jose recognizes for JWS
    if (header.b64 === undefined) return undefined;
  }
  return typeof header.b64 === 'boolean' ? header.b64 : undefined;
}

/** The MAC check: true when `signature` is the HMAC of `input` under `secret`. Constant time in the MAC. */
function macMatches(hash: string, secret: Buffer, input: string, signature: Uint8Array): boolean {
  const mac = createHmac(hash, secret).update(input, 'latin1').digest();
  return mac.length === signature.length && timingSafeEqual(mac, signature);
}

/**
 * Verifies `token` (compact JWS, HMAC) and validates its claims at `nowSec` (seconds since the
 * epoch). Never throws.
 */
export function verifyHmacJwt(token: string, secret: Buffer, o: HmacVerifyOptions, nowSec: number, headerAllowed?: (header: Record<string, unknown>) => boolean): HmacOutcome {
  const parts = token.split('.');
  if (parts.length !== 3) return INVALID;
  const [h, p, s] = parts as [string, string, string];
  const header = decodeJsonObject(h);
  if (header === undefined) return INVALID;
  // The caller's own header rule (Rampart's `typ` allowlist), judged on the one decoded header.
  if (headerAllowed !== undefined && !headerAllowed(header)) return INVALID;
  if (payloadEncoded(header) !== true) return INVALID; // b64:false is refused by jwtVerify too
  const alg = header.alg;
  if (typeof alg !== 'string' || alg === '' || !o.algorithms.has(alg)) return INVALID;
  const hash = HASH_OF[alg];
  if (hash === undefined || secret.length === 0) return INVALID; // WebCrypto refuses an empty HMAC key
  if (!ASCII.test(p)) return INVALID;
  const signature = decodeBytes(s);
  if (signature === undefined) return INVALID;
  if (!macMatches(hash, secret, `${h}.${p}`, signature)) return INVALID;
  const claims = decodeJsonObject(p);
  return claims === undefined ? INVALID : validateClaims(claims, o, nowSec);
}

/** jose's validateClaimsSet for the options Rampart uses, in jose's order. */
export function validateClaims(claims: Record<string, unknown>, o: HmacVerifyOptions, now: number): HmacOutcome {
  const presence = [...o.requiredClaims];
  if (o.audience !== undefined) presence.push('aud');
  if (o.issuer !== undefined) presence.push('iss');
  for (const claim of presence) if (!Object.hasOwn(claims, claim)) return INVALID;
  if (o.issuer !== undefined && claims.iss !== o.issuer) return INVALID;
  if (o.audience !== undefined && !audienceMatches(claims.aud, o.audience)) return INVALID;
  const tolerance = o.clockTolerance;
  if (claims.iat !== undefined && typeof claims.iat !== 'number') return INVALID;
  const nbf = claims.nbf;
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now + tolerance)) return INVALID;
  const exp = claims.exp;
  if (exp !== undefined && typeof exp !== 'number') return INVALID;
  if (exp !== undefined && exp <= now - tolerance) return EXPIRED;
  return { ok: true, payload: claims };
}

function audienceMatches(aud: unknown, audience: string): boolean {
  if (typeof aud === 'string') return aud === audience;
  return Array.isArray(aud) && aud.includes(audience);
}
