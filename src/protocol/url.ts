/**
 * URL judgements by parsing (WHATWG URL), never by regex on raw text: `JaVaScRiPt:`,
 * ` javascript:` and `java\tscript:` all parse to the `javascript:` scheme and are refused.
 */
const SAFE_LINK_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

export function parseUrl(raw: string): URL | undefined {
  try {
    return new URL(raw);
  } catch {
    return undefined;
  }
}

/** True when `raw` is an absolute http(s) URL with a host (attachment URLs). */
export function isHttpUrl(raw: string): boolean {
  const url = parseUrl(raw);
  return url !== undefined && (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
}

/**
 * True when a link found in content may be rendered clickable: http, https or mailto, and for
 * http(s) no user or password before the host (`https://bank.example@evil.example/` goes to
 * evil.example while it reads as the bank).
 */
export function isSafeLinkUrl(raw: string): boolean {
  const url = parseUrl(raw);
  if (url === undefined || !SAFE_LINK_PROTOCOLS.has(url.protocol)) return false;
  return url.protocol === 'mailto:' || (url.username === '' && url.password === '');
}
