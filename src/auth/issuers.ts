/**
 * Several trusted issuers: the token's (unverified) `iss` picks the issuer among those configured,
 * by exact string, before any key is fetched — the key location always comes from config, never
 * from the token. Each issuer has its own key source (so JWKS keys are cached per issuer and
 * `kid`), algorithms, audience and types, and its verifier checks `iss` again on the verified token.
 */
import { decodeJwt } from 'jose';
import type { RampartConfig } from '../config/schema.js';
import { jwksKeySource, publicKeySource, secretKeySource, type KeySource } from './key-source.js';
import { createTokenVerifier, isCompactJws, type TokenVerifier, type VerifyResult } from './token-verifier.js';
import { AuthFailureReason } from '../protocol/reasons.js';
import { namesKey, usesDevelopmentKey, type KeyConfig } from './development-key.js';

export interface IssuerVerifier {
  /** Undefined only for the top-level `jwt` key without `jwt.issuer`: it takes tokens no named issuer claims. */
  issuer: string | undefined;
  verify: TokenVerifier;
}

type JwtConfig = RampartConfig['jwt'];

/** The key source a `jwt` section or `jwt.issuers` entry names, if any. */
export function keySourceOf(key: KeyConfig, jwt: JwtConfig): KeySource | undefined {
  if (key.secret !== undefined) return secretKeySource(key.secret);
  if (key.publicKeyFile !== undefined) return publicKeySource(key.publicKeyFile);
  if (key.jwksUrl !== undefined) return jwksKeySource(key.jwksUrl, jwt.jwksCacheMaxAge, jwt.jwksRefetchIntervalMs, jwt.jwksTimeoutMs);
  return undefined;
}

/**
 * One verifier per configured issuer. `fallbackKey` is used for the top-level entry when `jwt`
 * names no key and no issuer list is given (the development key).
 */
export function issuerVerifiers(jwt: JwtConfig, fallbackKey: () => KeySource): IssuerVerifier[] {
  const common = { clockTolerance: jwt.clockTolerance, maxTokenLength: jwt.maxTokenLength, requireType: jwt.requireType, maxLifetimeMs: jwt.maxTokenLifetimeMs };
  const verifiers: IssuerVerifier[] = [];
  const topKey = usesDevelopmentKey(jwt) ? fallbackKey() : keySourceOf(jwt, jwt);
  if (topKey) {
    verifiers.push({
      issuer: jwt.issuer,
      verify: createTokenVerifier({
        ...common,
        keySource: topKey,
        types: jwt.types,
        ...(jwt.algorithms ? { algorithms: jwt.algorithms } : {}),
        ...(jwt.issuer !== undefined ? { issuer: jwt.issuer } : {}),
        ...(jwt.audience !== undefined ? { audience: jwt.audience } : {}),
        ...(jwt.tenants !== undefined ? { tenants: jwt.tenants } : {}),
      }),
    });
  }
  for (const entry of jwt.issuers) {
    const keySource = keySourceOf(entry, jwt);
    if (!keySource) throw new Error(`jwt.issuers: ${entry.issuer} names no key`);
    const audience = entry.audience ?? jwt.audience;
    verifiers.push({
      issuer: entry.issuer,
      verify: createTokenVerifier({
        ...common,
        keySource,
        issuer: entry.issuer,
        types: entry.types ?? jwt.types,
        ...(entry.algorithms ? { algorithms: entry.algorithms } : {}),
        ...(audience !== undefined ? { audience } : {}),
        ...(entry.tenants !== undefined ? { tenants: entry.tenants } : {}),
      }),
    });
  }
  return verifiers;
}

/** The unverified `iss` of a token, or undefined (absent, not a string, or not a JWT at all). */
function unverifiedIssuer(token: string): string | undefined {
  try {
    const { iss } = decodeJwt(token);
    return typeof iss === 'string' ? iss : undefined;
  } catch {
    return undefined;
  }
}

/** Routes each token to its issuer's verifier; with a single verifier, that one decides alone. */
export function createIssuerRouter(verifiers: IssuerVerifier[], maxTokenLength: number): TokenVerifier {
  if (verifiers.length === 1) return verifiers[0]!.verify;
  const byIssuer = new Map(verifiers.filter((v) => v.issuer !== undefined).map((v) => [v.issuer!, v.verify]));
  const unnamed = verifiers.find((v) => v.issuer === undefined)?.verify;
  const invalid: VerifyResult = { ok: false, reason: AuthFailureReason.INVALID_TOKEN };
  return async (token) => {
    if (token.length > maxTokenLength) return { ok: false, reason: AuthFailureReason.TOKEN_TOO_LARGE };
    // Routed only in its one canonical spelling (each issuer's verifier refuses the others anyway).
    if (!isCompactJws(token)) return invalid;
    const iss = unverifiedIssuer(token);
    const verify = (iss !== undefined ? byIssuer.get(iss) : undefined) ?? unnamed;
    return verify ? verify(token) : invalid;
  };
}

/** Problems in `jwt.issuers` the schema cannot express (refused at start-up). */
export function issuerConfigProblems(jwt: JwtConfig): string[] {
  const problems: string[] = [];
  const seen = new Set<string>(jwt.issuer !== undefined && namesKey(jwt) ? [jwt.issuer] : []);
  jwt.issuers.forEach((entry, i) => {
    const keys = [entry.secret, entry.publicKeyFile, entry.jwksUrl].filter((k) => k !== undefined);
    if (keys.length !== 1) problems.push(`jwt.issuers.${i}: set exactly one of secret, publicKeyFile, jwksUrl`);
    if (seen.has(entry.issuer)) problems.push(`jwt.issuers.${i}.issuer: configured twice`);
    seen.add(entry.issuer);
    const hmacKey = entry.secret !== undefined;
    if (entry.algorithms?.some((alg) => alg.startsWith('HS') !== hmacKey)) {
      problems.push(`jwt.issuers.${i}.algorithms: ${hmacKey ? 'a shared secret allows only HS256/HS384/HS512' : 'a public key or JWKS allows no HS* algorithm'}`);
    }
  });
  return problems;
}
