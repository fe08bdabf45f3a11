/**
 * The `KeySource` port: where verification keys come from. A shared secret, a PEM public key file,
 * or a JWKS URL (keys cached by jose's remote key set, selected by `kid`). One source per issuer, so
 * JWKS keys are cached per (issuer, kid).
 */
import { readFileSync } from 'node:fs';
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';

export type VerificationKey = KeyObject | JWTVerifyGetKey;

export interface KeySource {
  kind: 'secret' | 'public_key' | 'jwks';
  key: VerificationKey;
  /** The algorithms accepted when config names none. */
  defaultAlgorithms: string[];
}

export function secretKeySource(secret: string): KeySource {
  return { kind: 'secret', key: createSecretKey(Buffer.from(secret, 'utf8')), defaultAlgorithms: ['HS256'] };
}

export function publicKeySource(pemFile: string): KeySource {
  const key = createPublicKey(readFileSync(pemFile, 'utf8'));
  const byType: Record<string, string[]> = { rsa: ['RS256'], 'rsa-pss': ['PS256'], ec: ['ES256', 'ES384', 'ES512'], ed25519: ['EdDSA', 'Ed25519'] };
  return { kind: 'public_key', key, defaultAlgorithms: byType[key.asymmetricKeyType ?? ''] ?? ['RS256'] };
}

/**
 * `refetchIntervalMs` is jose's `cooldownDuration`: a token whose `kid` is not in the cached set
 * refetches the set (key rotation), but at most once per interval after the last fetch, so
 * made-up `kid`s cannot turn into a flood of requests to the identity provider.
 */
export function jwksKeySource(url: string, cacheMaxAge: number, refetchIntervalMs = 30000, timeoutMs = 5000): KeySource {
  const key = createRemoteJWKSet(new URL(url), { cacheMaxAge, cooldownDuration: refetchIntervalMs, timeoutDuration: timeoutMs });
  return { kind: 'jwks', key, defaultAlgorithms: ['RS256', 'ES256', 'EdDSA', 'Ed25519'] };
}
