/**
 * The development signing key: created once under `dataDir` (mode 0600) so `rampart serve` works
 * out of the box and `rampart token` signs tokens the server accepts. Never used in production.
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

export const DEV_KEY_FILE = 'dev-signing-key';

export function devKeyPath(dataDir: string): string {
  return join(dataDir, DEV_KEY_FILE);
}

/** Returns the dev secret, creating it (48 random bytes, base64url) on first use. */
export function loadOrCreateDevSecret(dataDir: string): { secret: string; created: boolean } {
  const path = devKeyPath(dataDir);
  if (existsSync(path)) return { secret: readFileSync(path, 'utf8').trim(), created: false };
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(48).toString('base64url');
  // `wx`: never overwrite a key another process created in the meantime.
  try {
    writeFileSync(path, secret + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { secret: readFileSync(path, 'utf8').trim(), created: false };
    throw err;
  }
  return { secret, created: true };
}
