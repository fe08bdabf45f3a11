/**
 * Whether the server signs and verifies with the development key (config/dev-key.ts): asked by the
 * verifier set, the demo's token endpoint and `rampart serve`'s start banner, answered here once.
 * Production config validation refuses a config that names no key.
 */
import type { RampartConfig } from '../config/schema.js';

type JwtConfig = RampartConfig['jwt'];
/** A `jwt` section or a `jwt.issuers` entry: each may name one key. */
export type KeyConfig = Pick<JwtConfig['issuers'][number], 'secret' | 'publicKeyFile' | 'jwksUrl'>;

/** True when the section or entry names a key of its own. */
export function namesKey(key: KeyConfig): boolean {
  return key.secret !== undefined || key.publicKeyFile !== undefined || key.jwksUrl !== undefined;
}

/** True when config names no key at all (none at the top level, no issuers): the development key. */
export function usesDevelopmentKey(jwt: KeyConfig & Pick<JwtConfig, 'issuers'>): boolean {
  return !namesKey(jwt) && jwt.issuers.length === 0;
}
