/** Signs development tokens (`rampart token`, tests, benchmarks) with an HMAC secret. */
import { SignJWT } from 'jose';
import { createSecretKey } from 'node:crypto';

export interface DevTokenClaims {
  sub: string;
  role?: string;
  tid?: string;
  /** Token id (`jti`), what an operator revokes a token by. */
  jti?: string;
  /** Lifetime: seconds, or a jose duration string such as "1h". */
  ttl?: string | number;
  issuer?: string;
  audience?: string;
}

/** The header a development token is signed with: what the server's `jwt` config accepts. */
export interface DevTokenSigning {
  alg: 'HS256' | 'HS384' | 'HS512';
  typ: string;
}

const HMAC_ALGORITHMS = new Set(['HS256', 'HS384', 'HS512']);

/**
 * The first HMAC algorithm of `jwt.algorithms` (a shared secret allows no other; HS256 when the
 * list is not set) and the first of `jwt.types`: a token the same config verifies.
 */
export function devTokenSigning(jwt: { algorithms?: readonly string[] | undefined; types: readonly string[] }): DevTokenSigning {
  const alg = (jwt.algorithms ?? ['HS256']).find((a) => HMAC_ALGORITHMS.has(a)) ?? 'HS256';
  return { alg: alg as DevTokenSigning['alg'], typ: jwt.types[0] ?? 'JWT' };
}

export async function signDevToken(secret: string, claims: DevTokenClaims, signing: DevTokenSigning = { alg: 'HS256', typ: 'JWT' }): Promise<string> {
  const extra: Record<string, string> = {};
  if (claims.role !== undefined) extra.role = claims.role;
  if (claims.tid !== undefined) extra.tid = claims.tid;
  if (claims.jti !== undefined) extra.jti = claims.jti;
  const ttl = claims.ttl ?? '1h';
  let jwt = new SignJWT(extra)
    .setProtectedHeader({ alg: signing.alg, typ: signing.typ })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(typeof ttl === 'number' ? Math.floor(Date.now() / 1000) + ttl : ttl);
  if (claims.issuer !== undefined) jwt = jwt.setIssuer(claims.issuer);
  if (claims.audience !== undefined) jwt = jwt.setAudience(claims.audience);
  return jwt.sign(createSecretKey(Buffer.from(secret, 'utf8')));
}
