/**
 * Character-level content policy, one pass of charCodeAt, no regex.
 *
 * standard (every message):
 * - C0 controls other than TAB and LF are refused, including CR: clients send `\n` line endings
 *   (a browser textarea already does); accepting CR would only invite CR/LF confusion downstream.
 * - DEL (U+007F) and C1 controls (U+0080–U+009F).
 * - Bidi embeddings/overrides U+202A–U+202E and isolates U+2066–U+2069 (they reorder what a reader
 *   sees: "Trojan Source"). The marks LRM/RLM/ALM (U+200E, U+200F, U+061C) are allowed: they are
 *   needed for ordinary right-to-left text and cannot reorder a run on their own.
 * - Lone surrogates (not valid UTF-16, cannot be stored or re-encoded faithfully).
 * Apart (`markRunTooLong`, rule `combining_marks`): more than MAX_COMBINING_MARKS combining marks in
 * a row, judged on a message's sanitized HTML and on a name or URL as written.
 * strict (the article's opt-in list for content that may reach legacy systems), additionally:
 * - TAB and LF (rule `control_char`), and `;` `&&` `||` `>` `<` `` ` `` `$(` `\` (`strict_pattern`).
 *
 * The first offending character decides the rule. The rule is a stable name; the offending
 * content is never echoed.
 */

import { MAX_COMBINING_MARKS } from '../protocol/bounds.js';

export type ContentPolicy = 'standard' | 'strict';
export type ContentRule = 'control_char' | 'bidi_override' | 'lone_surrogate' | 'strict_pattern';
export type ContentCheck = { ok: true } | { ok: false; rule: ContentRule };

const OK: ContentCheck = Object.freeze({ ok: true });
const REFUSED: Readonly<Record<ContentRule, ContentCheck>> = Object.freeze({
  control_char: Object.freeze({ ok: false, rule: 'control_char' }),
  bidi_override: Object.freeze({ ok: false, rule: 'bidi_override' }),
  lone_surrogate: Object.freeze({ ok: false, rule: 'lone_surrogate' }),
  strict_pattern: Object.freeze({ ok: false, rule: 'strict_pattern' }),
});

/** What a character is to a run of combining marks: it ends the run, counts in it, or passes (draws nothing). */
const ENDS = 0;
const COUNTS = 1;
const PASSES = 2;
const MARK = /^\p{M}$/u;
const IGNORABLE = /^\p{Default_Ignorable_Code_Point}$/u;
const kindOf = (ch: string): number => (MARK.test(ch) ? COUNTS : IGNORABLE.test(ch) ? PASSES : ENDS);
/** The kind of each BMP character (64 KB, built once: a regex per character would cost ~20 ns). */
const BMP_KINDS = buildKindTable();

function buildKindTable(): Uint8Array {
  const kinds = new Uint8Array(0x10000);
  for (let c = 0xa0; c < 0xd800; c++) kinds[c] = kindOf(String.fromCharCode(c));
  for (let c = 0xe000; c < 0x10000; c++) kinds[c] = kindOf(String.fromCharCode(c));
  return kinds;
}

/** An astral code point's kind: marks (Brahmi, Tirhuta, musical symbols, the variation selectors supplement, …) and default-ignorables (tags, …) live below the emoji blocks or in U+E0000–E0FFF. */
function astralKind(cp: number): number {
  return cp < 0x1f000 || (cp >= 0xe0000 && cp <= 0xe0fff) ? kindOf(String.fromCodePoint(cp)) : ENDS;
}

/**
 * More than MAX_COMBINING_MARKS combining marks in a row ("Zalgo" text, stacked over the messages
 * above and below). What draws nothing among them — default-ignorable characters (ZWJ, ZWNJ, word
 * joiner, invisible operators, tags, …) — neither counts nor ends the run: a renderer may stack
 * the marks on both sides over one letter (Chromium does across U+2060, U+2062 and ZWNJ), and
 * alone such characters stack nothing. Any other character ends it, a line break too.
 *
 * `html`: `text` is the sanitizer's output, where every `<` starts a tag it kept (text `<` is
 * `&lt;`). A kept tag draws nothing: it passes like a default-ignorable, but `<pre>` and `</pre>`,
 * blocks, end the run as a line break does. A tag shown as text (an unbalanced closer) is letters
 * there, and ends it.
 */
export function markRunTooLong(text: string, html: boolean): boolean {
  const n = text.length;
  let marks = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0xa0) {
      if (html && c === 0x3c) {
        const end = text.indexOf('>', i);
        if (end > i) {
          if (isPreTag(text, i, end)) marks = 0;
          i = end;
          continue;
        }
      }
      marks = 0;
      continue;
    }
    let kind: number;
    if ((c & 0xfc00) === 0xd800 && i + 1 < n && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      kind = astralKind(((c - 0xd800) << 10) + (text.charCodeAt(i + 1) - 0xdc00) + 0x10000);
      i++;
    } else {
      kind = BMP_KINDS[c]!;
    }
    if (kind === ENDS) marks = 0;
    else if (kind === COUNTS && ++marks > MAX_COMBINING_MARKS) return true;
  }
  return false;
}

/** `<pre>` or `</pre>` at [from, end] (the sanitizer writes kept tags in lower case, without spaces). */
function isPreTag(text: string, from: number, end: number): boolean {
  const len = end - from + 1;
  return (len === 5 || len === 6) && text.slice(from, end + 1).replace('/', '') === '<pre>';
}

export function checkContent(text: string, policy: ContentPolicy): ContentCheck {
  const strict = policy === 'strict';
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      if (c < 0x20) {
        if ((c === 0x09 || c === 0x0a) && !strict) continue;
        return REFUSED.control_char;
      }
      if (c === 0x7f) return REFUSED.control_char;
      if (strict && isStrictRefused(text, i, c)) return REFUSED.strict_pattern;
      continue;
    }
    if (c <= 0x9f) return REFUSED.control_char;
    if (c < 0x2000) continue;
    if ((c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069)) return REFUSED.bidi_override;
    if (c >= 0xd800 && c <= 0xdfff) {
      // A high surrogate must be followed by a low one; a low one never comes first.
      if (c <= 0xdbff && i + 1 < n) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          i++;
          continue;
        }
      }
      return REFUSED.lone_surrogate;
    }
  }
  return OK;
}

/** Shell metacharacters of the strict list; `c` is ASCII printable. */
function isStrictRefused(text: string, i: number, c: number): boolean {
  switch (c) {
    case 0x3b: // ;
    case 0x3c: // <
    case 0x3e: // >
    case 0x60: // `
    case 0x5c: // \
      return true;
    case 0x26: // &&
    case 0x7c: // ||
      return text.charCodeAt(i + 1) === c;
    case 0x24: // $(
      return text.charCodeAt(i + 1) === 0x28;
    default:
      return false;
  }
}
