/**
 * Origin allowlist, decided by parsing, never by string tricks. An Origin passes only if it is a
 * canonical serialized origin (what browsers send: lowercase, no userinfo, no path, no default
 * port, no trailing dot) and matches an exact entry or a `scheme://*.domain[:port]` pattern at a
 * dot boundary. Everything else — `null`, duplicates, other schemes — is refused.
 */

export interface OriginPolicy {
  exact: ReadonlySet<string>;
  patterns: readonly { protocol: string; suffix: string; port: string }[];
  allowMissing: boolean;
}

export type OriginVerdict = 'allowed' | 'missing_allowed' | 'missing' | 'duplicate' | 'malformed' | 'not_allowed';

const WEB_PROTOCOLS = new Set(['http:', 'https:']);

/** Parses a canonical origin; undefined if `raw` is not exactly one. */
export function parseCanonicalOrigin(raw: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return undefined;
  }
  if (!WEB_PROTOCOLS.has(url.protocol)) return undefined;
  if (url.origin !== raw) return undefined; // path, userinfo, case, default port, trailing slash
  // Trailing dot, leading dot or an empty label (`a..example.com`): not a host a browser sends,
  // and a way to smuggle an extra "label" past a suffix match.
  if (url.hostname === '' || url.hostname.startsWith('.') || url.hostname.endsWith('.') || url.hostname.includes('..')) return undefined;
  return url;
}

/** Compiles config entries once; throws naming the bad entry (never at request time). */
export function compileOriginPolicy(entries: readonly string[], allowMissing: boolean): OriginPolicy {
  const exact = new Set<string>();
  const patterns: { protocol: string; suffix: string; port: string }[] = [];
  for (const entry of entries) {
    // `*` is allowed only as the whole leftmost label of a pattern (`scheme://*.domain`).
    if (entry.indexOf('*') !== entry.lastIndexOf('*')) throw new Error(`allowedOrigins: "${entry}" is not a valid pattern`);
    const wildcard = /^(https?):\/\/\*\.([^/:]+)(?::(\d+))?$/.exec(entry);
    if (wildcard) {
      const [, scheme, domain, port] = wildcard as unknown as [string, string, string, string | undefined];
      const probe = parseCanonicalOrigin(`${scheme}://probe.${domain}${port ? `:${port}` : ''}`);
      if (!probe || !domain.includes('.') || domain.includes('*')) throw new Error(`allowedOrigins: "${entry}" is not a valid pattern`);
      patterns.push({ protocol: `${scheme}:`, suffix: `.${domain.toLowerCase()}`, port: probe.port });
      continue;
    }
    const url = entry.includes('*') ? undefined : parseCanonicalOrigin(entry);
    if (!url) throw new Error(`allowedOrigins: "${entry}" is not a canonical origin (scheme://host[:port], lowercase, no path)`);
    exact.add(url.origin);
  }
  return { exact, patterns, allowMissing };
}

/**
 * The server's own origins, allowed when `allowedOrigins` is empty (development): what a browser
 * sends for a page served on `port` — the bound one (port 0 binds an ephemeral port) — and without
 * the scheme's default port, which a serialized origin never names.
 */
export function ownOrigins(secure: boolean, port: number): string[] {
  const scheme = secure ? 'https' : 'http';
  return ['localhost', '127.0.0.1', '[::1]'].map((host) => new URL(`${scheme}://${host}:${port}`).origin);
}

/** `allowedOrigins`, or when it is empty the server's own origins on `own.port`. */
export function serverOriginPolicy(allowed: readonly string[], allowMissing: boolean, own: { secure: boolean; port: number }): OriginPolicy {
  return compileOriginPolicy(allowed.length > 0 ? allowed : ownOrigins(own.secure, own.port), allowMissing);
}

/**
 * `headerValues`: every Origin header line of the request (from rawHeaders), so duplicates are
 * seen instead of being joined into one string.
 */
export function checkOrigin(policy: OriginPolicy, headerValues: readonly string[]): OriginVerdict {
  if (headerValues.length === 0) return policy.allowMissing ? 'missing_allowed' : 'missing';
  if (headerValues.length > 1) return 'duplicate';
  const raw = headerValues[0] as string;
  if (policy.exact.has(raw)) return 'allowed';
  const url = parseCanonicalOrigin(raw);
  if (!url) return 'malformed';
  for (const p of policy.patterns) {
    if (url.protocol !== p.protocol || url.port !== p.port) continue;
    const host = url.hostname;
    // Dot boundary and a non-empty label before it: `evilexample.com` and `.example.com` fail.
    if (host.length > p.suffix.length && host.endsWith(p.suffix)) return 'allowed';
  }
  return 'not_allowed';
}

/**
 * Every origin a WebSocket upgrade declares, in one pass over rawHeaders: `Origin` lines and, for a
 * version-8 upgrade, `Sec-WebSocket-Origin` lines — where the browsers of the hybi-07..12 drafts
 * put the page's origin (ws reads it as the origin for version 8 only, as here). Two declarations,
 * whichever the header, are a duplicate.
 */
export function declaredOrigins(rawHeaders: readonly string[]): string[] {
  const values: string[] = [];
  let hybi: string[] | undefined;
  let version8 = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (name === 'origin') values.push(rawHeaders[i + 1] as string);
    else if (name === 'sec-websocket-origin') (hybi ??= []).push(rawHeaders[i + 1] as string);
    else if (name === 'sec-websocket-version') version8 = (rawHeaders[i + 1] as string).trim() === '8';
  }
  return version8 && hybi !== undefined ? values.concat(hybi) : values;
}
