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

export async function signDevToken(secret: string, claims: DevTokenClaims): Promise<string> {
  const extra: Record<string, string> = {};
  if (claims.role !== undefined) extra.role = claims.role;
  if (claims.tid !== undefined) extra.tid = claims.tid;
  if (claims.jti !== undefined) extra.jti = claims.jti;
  const ttl = claims.ttl ?? '1h';
  let jwt = new SignJWT(extra)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(typeof ttl === 'number' ? Math.floor(Date.now() / 1000) + ttl : ttl);
  if (claims.issuer !== undefined) jwt = jwt.setIssuer(claims.issuer);
  if (claims.audience !== undefined) jwt = jwt.setAudience(claims.audience);
  return jwt.sign(createSecretKey(Buffer.from(secret, 'utf8')));
}
