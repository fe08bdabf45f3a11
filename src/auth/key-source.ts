/**
 * The `KeySource` port: where verification keys come from. A shared secret, a PEM public key file,
 * or a JWKS URL (keys cached by jose's remote key set, selected by `kid`). One source per issuer, so
 * JWKS keys are cached per (issuer, kid).
 */
import { readFileSync } from 'node:fs';
import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, errors, type JWTVerifyGetKey } from 'jose';

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
 * made-up `kid`s cannot turn into a flood of requests to the identity provider. jose counts that
 * interval from the last fetch that succeeded only: while the endpoint fails, every token would
 * fetch again (each waiting up to `timeoutMs`). So a failed fetch starts the interval too: until it
 * ends, a token is judged by the set cached before (if still fresh), or refused at once with the
 * failure (`unavailable`), and nothing is fetched.
 */
export function jwksKeySource(url: string, cacheMaxAge: number, refetchIntervalMs = 30000, timeoutMs = 5000, now: () => number = Date.now): KeySource {
  const remote = createRemoteJWKSet(new URL(url), { cacheMaxAge, cooldownDuration: refetchIntervalMs, timeoutDuration: timeoutMs });
  let failedAt = -Infinity;
  let failure: unknown;
  const key: JWTVerifyGetKey = async (header, token) => {
    if (now() - failedAt < refetchIntervalMs) {
      const cached = remote.fresh ? remote.jwks() : undefined;
      if (cached === undefined) throw failure;
      return createLocalJWKSet(cached)(header, token);
    }
    try {
      return await remote(header, token);
    } catch (err) {
      if (fetchFailed(err)) {
        failedAt = now();
        failure = err;
      }
      throw err;
    }
  };
  return { kind: 'jwks', key, defaultAlgorithms: ['RS256', 'ES256', 'EdDSA', 'Ed25519'] };
}

/** The key set could not be fetched (network, timeout, non-200, not a key set) — not a verdict on the token. */
export function fetchFailed(err: unknown): boolean {
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return true;
  if (err instanceof errors.JOSEError) return err.code === 'ERR_JOSE_GENERIC';
  return true; // fetch's own TypeError ("fetch failed") and friends
}
