/**
 * The client's IP: the direct peer, unless that peer is a trusted proxy (`behindProxy`), in which
 * case X-Forwarded-For is walked from the right past trusted hops. An untrusted peer's header is
 * ignored, so a client cannot choose its own IP to dodge per-IP limits.
 */
import { isIP } from 'node:net';

const MAPPED_HEX = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/;

/**
 * One spelling per address, so per-IP counters and the trusted-proxy list cannot be dodged by
 * writing the same address differently: IPv6 is lowercased and compressed, and IPv4-mapped IPv6
 * (dual-stack sockets, `::ffff:1.2.3.4` or `::ffff:102:304`) is the plain IPv4 address.
 */
export function normalizeIp(ip: string): string {
  const family = isIP(ip);
  if (family !== 6) return ip;
  // A zone id (`fe80::1%eth0`, how Node names a link-local peer) does not parse as a URL host:
  // the address before it is spelled like any other.
  const zone = ip.indexOf('%');
  if (zone !== -1) return `${normalizeIp(ip.slice(0, zone))}%${ip.slice(zone + 1).toLowerCase()}`;
  let canonical: string;
  try {
    canonical = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip.toLowerCase();
  }
  const mapped = MAPPED_HEX.exec(canonical);
  if (mapped) {
    const hi = parseInt(mapped[1] as string, 16);
    const lo = parseInt(mapped[2] as string, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return canonical;
}

/**
 * What per-IP limits count: an IPv4 address, or the IPv6 network of `prefixLength` bits it belongs
 * to (`2001:db8:1:2::/64`). One host is routinely given a whole /64 and can pick any source address
 * in it, so counting single IPv6 addresses would let it dodge every per-IP limit. 128 counts
 * addresses. Anything else is returned as `normalizeIp` spells it.
 */
export function ipLimitKey(ip: string, prefixLength: number): string {
  const normalized = normalizeIp(ip);
  if (prefixLength >= 128 || isIP(normalized) !== 6) return normalized;
  // A link-local address is counted by its network on its interface (the zone id stays in the key).
  const zone = normalized.indexOf('%');
  if (zone !== -1) return `${ipLimitKey(normalized.slice(0, zone), prefixLength)}${normalized.slice(zone)}`;
  const canonical = normalized;
  const groups = expandIpv6(canonical);
  if (groups === undefined) return canonical;
  for (let i = 0; i < 8; i++) {
    const keep = Math.min(16, Math.max(0, prefixLength - i * 16));
    groups[i] = keep === 0 ? 0 : groups[i]! & ((0xffff << (16 - keep)) & 0xffff);
  }
  return `${normalizeIp(groups.map((g) => g.toString(16)).join(':'))}/${prefixLength}`;
}

/** The eight 16-bit groups of a canonical IPv6 address (no zone id, no embedded IPv4), or undefined. */
function expandIpv6(canonical: string): number[] | undefined {
  if (canonical.includes('.')) return undefined;
  const [head, tail] = canonical.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - left.length - right.length;
  if (missing < 0 || (tail === undefined && missing !== 0)) return undefined;
  return [...left, ...Array<string>(missing).fill('0'), ...right].map((g) => parseInt(g, 16));
}

const normalizedSets = new WeakMap<ReadonlySet<string>, ReadonlySet<string>>();

function normalizedSet(set: ReadonlySet<string>): ReadonlySet<string> {
  let normalized = normalizedSets.get(set);
  if (!normalized) {
    normalized = new Set([...set].map(normalizeIp));
    normalizedSets.set(set, normalized);
  }
  return normalized;
}

/**
 * Some proxies append the client's port (`203.0.113.7:51234`, `[2001:db8::7]:443`): the address
 * without it. Anything else is returned as it is (a bare IPv6 address has colons of its own).
 */
function withoutPort(hop: string): string {
  if (hop.startsWith('[')) {
    const end = hop.indexOf(']');
    return end > 0 && (end === hop.length - 1 || /^:\d{1,5}$/.test(hop.slice(end + 1))) ? hop.slice(1, end) : hop;
  }
  const colon = hop.indexOf(':');
  return colon > 0 && colon === hop.lastIndexOf(':') && /^\d{1,5}$/.test(hop.slice(colon + 1)) ? hop.slice(0, colon) : hop;
}

export function resolveClientIp(
  remoteAddress: string | undefined,
  forwardedFor: string | string[] | undefined,
  trustedProxies: ReadonlySet<string>,
): string {
  const peer = normalizeIp(remoteAddress ?? 'unknown');
  if (trustedProxies.size === 0 || forwardedFor === undefined) return peer;
  const trusted = normalizedSet(trustedProxies);
  if (!trusted.has(peer)) return peer;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',');
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const raw = withoutPort((hops[i] as string).trim());
    if (isIP(raw) === 0) break; // garbage: stop at the last address we could trust
    const hop = normalizeIp(raw);
    client = hop;
    if (!trusted.has(hop)) break;
  }
  return client;
}
