/**
 * The one entry point the chat domain uses for message text: policy → extract → sanitize → not blank.
 *
 * Lengths: MAX_CONTENT_LENGTH (5000) applies to the client's RAW content (the schema enforces it,
 * and it is re-checked here so this function is safe on its own). The sanitized `content` may be
 * longer, because escaping grows text (`"` → `&quot;`); it is bounded by 6 × the raw length.
 */
import { MAX_ATTACHMENT_NAME_LENGTH, MAX_ATTACHMENT_URL_LENGTH, MAX_CONTENT_LENGTH, longerThan } from '../protocol/bounds.js';
import { ErrorReason } from '../protocol/reasons.js';
import { checkContent, markRunTooLong, type ContentPolicy, type ContentRule } from './content-policy.js';
import { extractEntities, type ExtractedLink } from './extract.js';
import { escapeHtml, isBlankRange, sanitizeHtmlDetailed } from './sanitize.js';
import { parseUrl } from '../protocol/url.js';

export { MAX_ATTACHMENT_NAME_LENGTH };

export type ProcessRule = ContentRule | 'combining_marks' | 'too_long' | 'empty_after_sanitize';

export interface ContentRejection {
  ok: false;
  reason: typeof ErrorReason.INVALID_CONTENT;
  rule: ProcessRule;
}

export interface ProcessedContent {
  ok: true;
  /** Sanitized HTML, safe for innerHTML. */
  content: string;
  mentions: string[];
  hashtags: string[];
  links: ExtractedLink[];
}

export interface SanitizedName {
  ok: true;
  /** HTML-escaped text, no markup at all. */
  name: string;
}

export function processContent(raw: string, policy: ContentPolicy): ProcessedContent | ContentRejection {
  if (longerThan(raw, MAX_CONTENT_LENGTH)) return reject('too_long');
  if (policy === 'standard' && isInertAscii(raw)) {
    if (isBlank(raw)) return reject('empty_after_sanitize');
    return { ok: true, content: raw, mentions: [], hashtags: [], links: [] };
  }
  return processContentStepByStep(raw, policy);
}

/**
 * ASCII characters none of the steps acts on: not a control (TAB and LF aside) or DEL, which the
 * policy refuses; not `& < > " '`, which the sanitizer escapes or reads as a tag; not `@ #`, which
 * may start a mention or hashtag, nor `:`, which ends a link's scheme. Indexed by char code.
 */
const INERT = new Uint8Array(128);
for (let c = 0x20; c < 0x7f; c++) INERT[c] = 1;
INERT[0x09] = INERT[0x0a] = 1;
for (const ch of '&<>"\'@#:') INERT[ch.charCodeAt(0)] = 0;

/**
 * Text made only of such characters passes the standard policy, comes out of the sanitizer
 * unchanged and holds no entity: one scan replaces the three (most messages are such text).
 * A test checks the shortcut against the step-by-step path on generated text.
 */
function isInertAscii(raw: string): boolean {
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c >= 128 || INERT[c] === 0) return false;
  }
  return true;
}

/** The three steps, one after the other (what `processContent` does for any other text). */
export function processContentStepByStep(raw: string, policy: ContentPolicy): ProcessedContent | ContentRejection {
  if (longerThan(raw, MAX_CONTENT_LENGTH)) return reject('too_long');
  const check = checkContent(raw, policy);
  if (!check.ok) return reject(check.rule);
  const { mentions, hashtags, links } = extractEntities(raw);
  const { html, hasVisibleText } = sanitizeHtmlDetailed(raw);
  // `<b></b>`, `<i> </i>`, whitespace or zero-width characters alone would be an empty bubble.
  if (!hasVisibleText) return reject('empty_after_sanitize');
  // On what the reader's page gets: a kept `<b></b>` between marks draws nothing, one shown as text does.
  if (markRunTooLong(html, true)) return reject('combining_marks');
  return { ok: true, content: html, mentions, hashtags, links };
}

/**
 * One-line display names (attachment names, group names): the standard character policy (bidi
 * overrides matter most here: `invoice\u202Egpj.exe`) and, since a name is one line, no TAB,
 * LF or line/paragraph separator either; then plain text escaping, no tags at all.
 */
export function sanitizeDisplayName(name: string): SanitizedName | ContentRejection {
  if (longerThan(name, MAX_ATTACHMENT_NAME_LENGTH)) return reject('too_long');
  const check = checkContent(name, 'standard');
  if (!check.ok) return reject(check.rule);
  if (breaksLine(name)) return reject('control_char');
  if (markRunTooLong(name, false)) return reject('combining_marks');
  if (isBlank(name)) return reject('empty_after_sanitize');
  return { ok: true, name: escapeHtml(name) };
}

export interface SanitizedUrl {
  ok: true;
  /** The WHATWG serialization with `'` and backquote encoded too: no `" ' < >`, backquote or space raw. */
  url: string;
}

/**
 * Attachment URLs (already checked to be absolute http(s) by the schema): the character policy
 * and no TAB or LF (one line; the URL parser would silently drop them), then stored as the URL
 * parser serializes it, so a client that puts it into markup by string concatenation cannot be
 * handed `"` or `<` (`https://a.example/x"><img onerror=…>`). Refused when that serialization
 * outgrows the bound (percent-encoding lengthens non-ASCII text).
 */
const URL_ESCAPES: Record<string, string> = { '"': '%22', "'": '%27', '`': '%60', '<': '%3C', '>': '%3E', ' ': '%20' };

export function sanitizeAttachmentUrl(raw: string): SanitizedUrl | ContentRejection {
  const check = checkContent(raw, 'standard');
  if (!check.ok) return reject(check.rule);
  if (breaksLine(raw)) return reject('control_char');
  if (markRunTooLong(raw, false)) return reject('combining_marks');
  const parsed = parseUrl(raw);
  if (parsed === undefined) return reject('control_char'); // unreachable after the schema's check; refused, never stored raw
  // The parser leaves `'` raw in a path or fragment, a backquote in a query, and `"` (or `<`, `>`)
  // in a host it does not take for a domain (`https://x"onmouseover="….example/`): encoded too, so
  // no quote of any kind can end an attribute the URL is pasted into.
  const url = parsed.href.replace(/["'`<> ]/g, (c) => URL_ESCAPES[c]!);
  if (url.length > MAX_ATTACHMENT_URL_LENGTH) return reject('too_long');
  return { ok: true, url };
}

function reject(rule: ProcessRule): ContentRejection {
  return { ok: false, reason: ErrorReason.INVALID_CONTENT, rule };
}

/** TAB, LF, or U+2028/U+2029 (LINE and PARAGRAPH SEPARATOR, line breaks to a renderer): not in a one-line value. */
function breaksLine(s: string): boolean {
  return /[\t\n\u2028\u2029]/.test(s);
}

/** Whitespace or invisible characters only (sanitize.ts `isBlankRange`). */
function isBlank(s: string): boolean {
  return isBlankRange(s, 0, s.length);
}
