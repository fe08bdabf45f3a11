/**
 * Mentions, hashtags and links, taken from the RAW content (before sanitizing, so `&lt;` and tags
 * inserted by escaping never leak into them). One pass over whitespace-delimited tokens, no regex.
 *
 * - Mentions `@name` / hashtags `#tag`: ASCII word chars [A-Za-z0-9_], 1..64 of them. The `@`/`#`
 *   must not follow a word char (so `bob@example.com` is no mention, `page#top` no hashtag) nor,
 *   for `#`, an `&` (`&#39;`). A run longer than 64 is ignored, not truncated (a truncated name
 *   would point at someone else). Deduplicated exactly (case-sensitive), first occurrence order,
 *   at most MAX_ENTITIES each. Nothing is extracted from inside a link token.
 * - Links: a token that, after leading wrappers `( [ { < " ' * _ ~`, starts with `scheme:`
 *   (RFC 3986 scheme, ≤ 32 chars) followed by at least one char. Trailing `. , : ; ! ? * _ ~ ' "`
 *   are trimmed, and a trailing `) ] } >` only when unbalanced within the token:
 *   `(see https://x.y/a).` yields `https://x.y/a`; `https://en.wikipedia.org/wiki/A_(b)` stays
 *   whole. `url` is that exact substring (a client can find it in the text, and must use it
 *   verbatim as href, through the DOM, never by string concatenation). `safe` comes from WHATWG
 *   URL parsing of that same string (isSafeLinkUrl: http, https, mailto only, no user or password
 *   before an http(s) host); a link containing
 *   `" ' < > \`` is never safe. Unsafe candidates (`javascript:`, `data:`, `note:x`, any scheme)
 *   are reported with `safe: false` so a client knows not to linkify them. Tokens longer than
 *   MAX_LINK_LENGTH are not reported. Deduplicated, at most MAX_LINKS.
 */
import { isSafeLinkUrl } from '../protocol/url.js';
import { characters } from '../protocol/bounds.js';
import { isWhitespaceCode } from './sanitize.js';

export const MAX_ENTITY_LENGTH = 64;
export const MAX_ENTITIES = 50;
export const MAX_LINKS = 20;
export const MAX_LINK_LENGTH = 2048;
const MAX_SCHEME_LENGTH = 32;

export interface ExtractedLink {
  url: string;
  safe: boolean;
}

export interface ExtractedEntities {
  mentions: string[];
  hashtags: string[];
  links: ExtractedLink[];
}

export function extractEntities(raw: string): ExtractedEntities {
  const mentions = new Set<string>();
  const hashtags = new Set<string>();
  const links = new Map<string, boolean>();
  const n = raw.length;
  let i = 0;
  while (i < n) {
    while (i < n && isWhitespaceCode(raw.charCodeAt(i))) i++;
    if (i >= n) break;
    const start = i;
    // Note which markers the token holds, so plain words cost one look per char.
    let colon = false;
    let marker = false;
    for (; i < n; i++) {
      const c = raw.charCodeAt(i);
      if (c === 0x3a) colon = true;
      else if (c === 0x40 || c === 0x23) marker = true;
      else if (isWhitespaceCode(c)) break;
    }
    const link = colon ? linkCandidate(raw, start, i) : undefined;
    if (link !== undefined) {
      if (link !== null && links.size < MAX_LINKS && !links.has(link)) links.set(link, isSafeLink(link));
      continue;
    }
    if (marker) scanEntities(raw, start, i, mentions, hashtags);
  }
  return {
    mentions: [...mentions],
    hashtags: [...hashtags],
    links: [...links].map(([url, safe]) => ({ url, safe })),
  };
}

/**
 * The trimmed link in raw[start, end): a string if the token is a link, null if it is link-shaped
 * but too long to report, undefined if it is not a link at all.
 */
function linkCandidate(raw: string, start: number, end: number): string | null | undefined {
  let s = start;
  // Leading wrappers such as `(`, `<`, `"`, `**` are not part of the link.
  while (s < end && isLeadingWrapper(raw.charCodeAt(s))) s++;
  if (s >= end || !isAsciiLetter(raw.charCodeAt(s))) return undefined;
  let j = s + 1;
  while (j < end && j - s <= MAX_SCHEME_LENGTH && isSchemeChar(raw.charCodeAt(j))) j++;
  if (j >= end || raw.charCodeAt(j) !== 0x3a /* : */ || j - s > MAX_SCHEME_LENGTH) return undefined;
  const colon = j;
  const e = trimTrailing(raw, colon + 1, end);
  if (e <= colon + 1) return undefined; // `note:` or `re:)` is prose, not a link
  if (e - s > MAX_LINK_LENGTH && characters(raw.slice(s, e)) > MAX_LINK_LENGTH) return null; // characters as every bound counts them
  return raw.slice(s, e);
}

/** End of raw[from, end) once trailing punctuation and unbalanced closers are removed. */
function trimTrailing(raw: string, from: number, end: number): number {
  // Bracket balance over the part that may be kept, updated as chars are trimmed.
  let paren = 0;
  let square = 0;
  let curly = 0;
  let angle = 0;
  for (let k = from; k < end; k++) {
    const c = raw.charCodeAt(k);
    if (c === 0x28) paren++;
    else if (c === 0x29) paren--;
    else if (c === 0x5b) square++;
    else if (c === 0x5d) square--;
    else if (c === 0x7b) curly++;
    else if (c === 0x7d) curly--;
    else if (c === 0x3c) angle++;
    else if (c === 0x3e) angle--;
  }
  let e = end;
  while (e > from) {
    const c = raw.charCodeAt(e - 1);
    if (c === 0x29 && paren < 0) paren++;
    else if (c === 0x5d && square < 0) square++;
    else if (c === 0x7d && curly < 0) curly++;
    else if (c === 0x3e && angle < 0) angle++;
    else if (!isTrailingPunct(c)) break;
    e--;
  }
  return e;
}

/**
 * http/https/mailto by WHATWG parsing, and free of `" ' < > \``: such a link stays harmless even
 * in a client that (wrongly) concatenates it into an HTML attribute. Real links rarely need them.
 */
function isSafeLink(url: string): boolean {
  for (let k = 0; k < url.length; k++) {
    const c = url.charCodeAt(k);
    if (c === 0x22 || c === 0x27 || c === 0x3c || c === 0x3e || c === 0x60) return false;
  }
  return isSafeLinkUrl(url);
}

/** . , : ; ! ? * _ ~ ' " */
function isTrailingPunct(c: number): boolean {
  switch (c) {
    case 0x2e: case 0x2c: case 0x3a: case 0x3b: case 0x21: case 0x3f: // . , : ; ! ?
    case 0x2a: case 0x5f: case 0x7e: case 0x27: case 0x22: // * _ ~ ' "
      return true;
    default:
      return false;
  }
}

/** ( [ { < " ' * _ ~ */
function isLeadingWrapper(c: number): boolean {
  switch (c) {
    case 0x28: case 0x5b: case 0x7b: case 0x3c: case 0x22: case 0x27: case 0x2a: case 0x5f: case 0x7e:
      return true;
    default:
      return false;
  }
}

/** Collect @mentions and #hashtags in raw[start, end). */
function scanEntities(raw: string, start: number, end: number, mentions: Set<string>, hashtags: Set<string>): void {
  let k = start;
  while (k < end) {
    const c = raw.charCodeAt(k);
    if (c !== 0x40 /* @ */ && c !== 0x23 /* # */) {
      k++;
      continue;
    }
    const prev = k > start ? raw.charCodeAt(k - 1) : -1;
    const nameStart = k + 1;
    let j = nameStart;
    while (j < end && isWordChar(raw.charCodeAt(j))) j++;
    k = j;
    if (isWordChar(prev) || (c === 0x23 && prev === 0x26 /* & */)) continue;
    const len = j - nameStart;
    if (len === 0 || len > MAX_ENTITY_LENGTH) continue;
    const target = c === 0x40 ? mentions : hashtags;
    if (target.size < MAX_ENTITIES) target.add(raw.slice(nameStart, j));
  }
}

function isAsciiLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

function isAsciiAlnum(c: number): boolean {
  return isAsciiLetter(c) || (c >= 0x30 && c <= 0x39);
}

function isWordChar(c: number): boolean {
  return isAsciiAlnum(c) || c === 0x5f;
}

/** RFC 3986: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
function isSchemeChar(c: number): boolean {
  return isAsciiAlnum(c) || c === 0x2b || c === 0x2d || c === 0x2e;
}
