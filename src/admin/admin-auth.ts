/**
 * Authentication of admin requests: `Authorization: Bearer <token>`. Only the SHA-256 of the token
 * is kept (`admin.tokenSha256`, or computed at start-up from `admin.token`); the presented token is
 * hashed and the two digests compared with `timingSafeEqual`, so neither its length nor its content
 * leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export interface AdminCredential {
  /** Who acts, in audit records and logs. */
  name: string;
  sha256: Buffer;
}

/** The configured credential, or undefined when the admin API is off. */
export function adminCredential(admin: { token?: string | undefined; tokenSha256?: string | undefined; name: string }): AdminCredential | undefined {
  if (admin.tokenSha256 !== undefined) return { name: admin.name, sha256: Buffer.from(admin.tokenSha256, 'hex') };
  if (admin.token !== undefined) return { name: admin.name, sha256: sha256(admin.token) };
  return undefined;
}

const MAX_HEADER = 2048;

/** The credential a request authenticates as, or undefined (missing, malformed or wrong). */
export function authenticateAdmin(header: string | undefined, credential: AdminCredential): AdminCredential | undefined {
  if (header === undefined || header.length > MAX_HEADER) return undefined;
  // The scheme is case-insensitive (RFC 9110 §11.1), as on /metrics; the token is not.
  const match = /^Bearer ([\x21-\x7e]+)$/i.exec(header);
  if (match === null) return undefined;
  return timingSafeEqual(sha256(match[1]!), credential.sha256) ? credential : undefined;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
