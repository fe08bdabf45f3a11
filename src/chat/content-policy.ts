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
 * - More than MAX_COMBINING_MARKS combining marks in a row (`combining_marks`): "Zalgo" text. The
 *   default-ignorable characters among them (ZWJ, ZWNJ, word joiner, invisible operators, tags, …)
 *   draw nothing, and a renderer may stack the marks on both sides over one letter (Chromium does
 *   across U+2060, U+2062 and ZWNJ): they count as part of the run; so does an allowlisted tag
 *   token (`<b></b>`), which draws nothing either. BMP marks are looked up in a bit
 *   table built once; an astral code point is tested only below the emoji blocks or in U+E0000–E0FFF
 *   (tags, variation selectors supplement), where astral marks and default-ignorables live.
 * strict (the article's opt-in list for content that may reach legacy systems), additionally:
 * - TAB and LF (rule `control_char`), and `;` `&&` `||` `>` `<` `` ` `` `$(` `\` (`strict_pattern`).
 *
 * The first offending character decides the rule. The rule is a stable name; the offending
 * content is never echoed.
 */

export type ContentPolicy = 'standard' | 'strict';
import { MAX_COMBINING_MARKS } from '../protocol/bounds.js';
import { allowedTagEnd } from './sanitize.js';

export type ContentRule = 'control_char' | 'bidi_override' | 'lone_surrogate' | 'strict_pattern' | 'combining_marks';
export type ContentCheck = { ok: true } | { ok: false; rule: ContentRule };

const OK: ContentCheck = Object.freeze({ ok: true });
const REFUSED: Readonly<Record<ContentRule, ContentCheck>> = Object.freeze({
  control_char: Object.freeze({ ok: false, rule: 'control_char' }),
  bidi_override: Object.freeze({ ok: false, rule: 'bidi_override' }),
  lone_surrogate: Object.freeze({ ok: false, rule: 'lone_surrogate' }),
  strict_pattern: Object.freeze({ ok: false, rule: 'strict_pattern' }),
  combining_marks: Object.freeze({ ok: false, rule: 'combining_marks' }),
});

const MARK = /^[\p{M}\p{Default_Ignorable_Code_Point}]$/u;
/** Bit c of the BMP: U+c is a combining mark or draws nothing (8 KB, built once: a regex per character would cost ~20 ns). */
const BMP_MARKS = buildMarkTable();

function buildMarkTable(): Uint32Array {
  const bits = new Uint32Array(0x10000 / 32);
  for (let c = 0xa0; c < 0xd800; c++) if (MARK.test(String.fromCharCode(c))) bits[c >>> 5]! |= 1 << (c & 31);
  for (let c = 0xe000; c < 0x10000; c++) if (MARK.test(String.fromCharCode(c))) bits[c >>> 5]! |= 1 << (c & 31);
  return bits;
}

/** An astral combining mark (Brahmi, Tirhuta, musical symbols, …) or default-ignorable (tags, variation selectors supplement). */
function isAstralMark(cp: number): boolean {
  return (cp < 0x1f000 || (cp >= 0xe0000 && cp <= 0xe0fff)) && MARK.test(String.fromCodePoint(cp));
}

export function checkContent(text: string, policy: ContentPolicy): ContentCheck {
  const strict = policy === 'strict';
  const n = text.length;
  let marks = 0; // combining marks in a row so far
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      if (c < 0x20) {
        if ((c === 0x09 || c === 0x0a) && !strict) {
          marks = 0;
          continue;
        }
        return REFUSED.control_char;
      }
      if (c === 0x7f) return REFUSED.control_char;
      if (strict && isStrictRefused(text, i, c)) return REFUSED.strict_pattern;
      if (c === 0x3c && marks > 0) {
        const end = allowedTagEnd(text, i);
        if (end >= 0 && !hasControlBreak(text, i, end)) {
          i = end; // its letters do not end the run
          continue;
        }
      }
      marks = 0;
      continue;
    }
    if (c <= 0x9f) return REFUSED.control_char;
    if ((BMP_MARKS[c >>> 5]! & (1 << (c & 31))) !== 0) {
      if (++marks > MAX_COMBINING_MARKS) return REFUSED.combining_marks;
    } else if ((c & 0xf800) !== 0xd800) marks = 0; // a surrogate pair is judged below, as one code point
    if (c < 0x2000) continue;
    if ((c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069)) return REFUSED.bidi_override;
    if (c >= 0xd800 && c <= 0xdfff) {
      // A high surrogate must be followed by a low one; a low one never comes first.
      if (c <= 0xdbff && i + 1 < n) {
        const d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          i++;
          if (!isAstralMark(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000)) marks = 0;
          else if (++marks > MAX_COMBINING_MARKS) return REFUSED.combining_marks;
          continue;
        }
      }
      return REFUSED.lone_surrogate;
    }
  }
  return OK;
}

/** A CR or FF in the tag token [from, to): not skipped, so the loop refuses it as anywhere else. */
function hasControlBreak(text: string, from: number, to: number): boolean {
  for (let k = from; k < to; k++) {
    const c = text.charCodeAt(k);
    if (c === 0x0c || c === 0x0d) return true;
  }
  return false;
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
