/**
 * The client's IP: the direct peer, unless that peer is a trusted proxy (`behindProxy`), in which
 * case X-Forwarded-For is walked from the right past trusted hops. An untrusted peer's header is
 * ignored, so a client cannot choose its own IP to dodge per-IP limits.
 */
import { isIP } from 'node:net';

export function normalizeIp(ip: string): string {
  // IPv4-mapped IPv6 (dual-stack sockets) is the same client as the plain IPv4 address.
  return ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

export function resolveClientIp(
  remoteAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  trustedProxies: ReadonlySet<string>,
): string {
  const peer = normalizeIp(remoteAddress ?? 'unknown');
  if (trustedProxies.size === 0 || !trustedProxies.has(peer) || forwardedFor === undefined) return peer;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = normalizeIp((hops[i] as string).trim());
    if (isIP(hop) === 0) break; // garbage: stop at the last address we could trust
    client = hop;
    if (!trustedProxies.has(hop)) break;
  }
  return client;
}
