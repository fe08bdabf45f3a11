/**
 * The development signing key: created once under `dataDir` (mode 0600) so `rampart serve` works
 * out of the box and `rampart token` signs tokens the server accepts. Never used in production.
 */
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

export const DEV_KEY_FILE = 'dev-signing-key';

export function devKeyPath(dataDir: string): string {
  return join(dataDir, DEV_KEY_FILE);
}

/** Shorter than this, a key file was truncated or hand-edited: refuse it rather than sign with it. */
const MIN_SECRET_LENGTH = 32;

function readExisting(path: string): string {
  const secret = readFileSync(path, 'utf8').trim();
  if (secret.length < MIN_SECRET_LENGTH) throw new Error(`${path}: the development signing key is too short (delete the file to create a new one)`);
  return secret;
}

/** True when group or others may read or write the key file (it was made 0600; someone widened it). */
function exposed(path: string): boolean {
  return process.platform !== 'win32' && (statSync(path).mode & 0o077) !== 0;
}

/**
 * Returns the dev secret, creating it (48 random bytes, base64url) on first use. `exposed`: an
 * existing key file other users may read (the caller warns; anyone who reads it can sign tokens).
 */
export function loadOrCreateDevSecret(dataDir: string): { secret: string; created: boolean; exposed: boolean } {
  const path = devKeyPath(dataDir);
  if (existsSync(path)) return { secret: readExisting(path), created: false, exposed: exposed(path) };
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const secret = randomBytes(48).toString('base64url');
  // Written whole to a private temp file, then linked into place: `link` fails if the key exists
  // (never overwrite a key another process created meanwhile), and nobody can ever read a
  // half-written key.
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temp, secret + '\n', { mode: 0o600, flag: 'wx' });
  try {
    linkSync(temp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { secret: readExisting(path), created: false, exposed: exposed(path) };
    throw err;
  } finally {
    rmSync(temp, { force: true });
  }
  return { secret, created: true, exposed: false };
}
