/**
 * Development-only token endpoint for the demo page: `GET /dev/token?name=alice` answers a short
 * token for the user named `alice` (a stable UUID derived from the name), `GET /dev/user?name=bob`
 * answers bob's user id. Served only in development mode, only when the server signs with a
 * shared secret, and only to loopback clients that address the server by a loopback name (so a
 * DNS-rebinding page cannot reach it) from the server's own origin (`Sec-Fetch-Site`).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { devTokenSigning, signDevToken, type DevTokenSigning } from '../auth/dev-token.js';
import type { RampartConfig } from '../config/schema.js';
import { loadOrCreateDevSecret } from '../config/dev-key.js';
import { usesDevelopmentKey } from '../auth/development-key.js';

/** Lifetime of a demo token: short, so the demo exercises the client's refresh. */
export const DEV_TOKEN_TTL_SECONDS = 600;

const NAME = /^[A-Za-z0-9_-]{1,32}$/;
const LOOPBACK_ADDRESSES = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

export interface DevTokens {
  issue(name: string): Promise<{ token: string; userId: string; expiresAt: number }>;
  userId(name: string): string;
}

export function createDevTokens(o: { secret: string; issuer?: string; audience?: string; signing?: DevTokenSigning }): DevTokens {
  return {
    async issue(name) {
      const userId = demoUserId(name);
      const token = await signDevToken(o.secret, {
        sub: userId,
        ttl: DEV_TOKEN_TTL_SECONDS,
        ...(o.issuer !== undefined ? { issuer: o.issuer } : {}),
        ...(o.audience !== undefined ? { audience: o.audience } : {}),
      }, o.signing);
      return { token, userId, expiresAt: Date.now() + DEV_TOKEN_TTL_SECONDS * 1000 };
    },
    userId: demoUserId,
  };
}

/** A stable UUID (version 8, "custom") for a demo name, case-insensitive. */
export function demoUserId(name: string): string {
  const h = createHash('sha256').update(`rampart-demo-user:${name.toLowerCase()}`).digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export const isDemoName = (name: string): boolean => NAME.test(name);

/** Only a loopback peer, addressing us by a loopback host, from our own origin (or no browser at all). */
export function devRequestAllowed(req: IncomingMessage): boolean {
  if (!LOOPBACK_ADDRESSES.has(req.socket.remoteAddress ?? '')) return false;
  const host = req.headers.host ?? '';
  const hostname = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!;
  if (!LOOPBACK_HOSTS.has(hostname.toLowerCase())) return false;
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${host}` && origin !== `https://${host}`) return false;
  return true;
}

/**
 * The endpoint's signer, when there can be one: development mode with the development key (no key
 * configured) and no `behindProxy`. Never in production.
 */
export function devTokensFor(config: RampartConfig): DevTokens | undefined {
  if (config.mode !== 'development') return undefined;
  const { jwt } = config;
  // Only with the development key: tokens signed with a configured key are real credentials, and
  // the loopback checks prove nothing behind a proxy on the same host (its peer address is
  // loopback, and it may forward `Host: 127.0.0.1`). Nor with `behindProxy`, for the same reason.
  if (!usesDevelopmentKey(jwt) || config.behindProxy.length > 0) return undefined;
  const { secret } = loadOrCreateDevSecret(config.dataDir);
  return createDevTokens({
    secret,
    signing: devTokenSigning(jwt),
    ...(jwt.issuer !== undefined ? { issuer: jwt.issuer } : {}),
    ...(jwt.audience !== undefined ? { audience: jwt.audience } : {}),
  });
}
