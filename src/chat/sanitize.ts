/**
 * HTML sanitizer for chat content: a single linear scan, no DOM, no regex.
 *
 * Contract (the output is safe to assign to the `innerHTML` of any ordinary element):
 * - The only markup that survives is an EXACT allowlisted tag token: `<b>`, `</b>` for
 *   b i em strong code pre, tag name case-insensitive, optional HTML whitespace before `>` and
 *   nothing else. It is re-emitted canonical (lower case, no whitespace).
 * - Anything else is text: `& < > " '` are escaped everywhere (`&amp; &lt; &gt; &quot; &#39;`).
 *   So `<b class=x>`, `<b/>`, `<script>`, `<!-- -->`, `<![CDATA[` all show up literally; we never
 *   try to parse attributes, so a quoting trick cannot smuggle one through.
 * - `&` is ALWAYS escaped, including in `&lt;` or `&#60;`: what the sender typed is what the
 *   recipient sees. Consequence: sanitizeHtml is not idempotent (its output is HTML, its input is
 *   text-with-tags; sanitizing twice double-escapes, but the tag skeleton is unchanged).
 * - Tags are balanced: a closer whose tag is open closes every tag opened after it, then itself; a
 *   closer with nothing to close is text (`use </b> to close bold` reads as typed); tags still open at the end are closed.
 * - Nesting is capped at MAX_TAG_DEPTH; openers beyond it are escaped as text.
 * - Output length ≤ 6 × input length (worst case: every char is `"`).
 * - Time is O(n): each char is visited at most twice (once while trying a tag, once as text).
 */

export const ALLOWED_TAGS: readonly string[] = ['b', 'i', 'em', 'strong', 'code', 'pre'];
export const MAX_TAG_DEPTH = 32;

export interface SanitizeResult {
  html: string;
  /** True when the output renders at least one character that is neither whitespace nor invisible (`isBlankCodePoint`). */
  hasVisibleText: boolean;
}

/** Sanitize `input` into safe HTML. See the module comment for the exact contract. */
export function sanitizeHtml(input: string): string {
  return sanitizeHtmlDetailed(input).html;
}

/** As sanitizeHtml, plus whether anything visible remains (so `<b> </b>` can be refused). */
export function sanitizeHtmlDetailed(input: string): SanitizeResult {
  const n = input.length;
  let i = 0;
  // Fast path: nothing to escape and no tags, the input is already the output.
  while (i < n && !isSpecial(input.charCodeAt(i))) i++;
  if (i === n) return { html: input, hasVisibleText: !isBlankRange(input, 0, n) };

  let out = '';
  let runStart = 0; // start of the pending run of plain text copied verbatim
  let visible = !isBlankRange(input, 0, i);
  const stack: number[] = []; // indexes into ALLOWED_TAGS
  const openCount = new Uint8Array(ALLOWED_TAGS.length); // how many of each tag are on the stack

  for (; i < n; i++) {
    const c = input.charCodeAt(i);
    if (!isSpecial(c)) {
      if (!visible && !blankAt(input, i)) visible = true;
      continue;
    }
    if (c === LT) {
      const tag = matchTag(input, i);
      const closing = (tag & CLOSING_BIT) !== 0;
      const id = tag & ID_MASK;
      if (tag >= 0 && (closing ? openCount[id]! > 0 : stack.length < MAX_TAG_DEPTH)) {
        out += input.slice(runStart, i);
        if (!closing) {
          stack.push(id);
          openCount[id]!++;
          out += OPEN[id]!;
        } else {
          // Close everything opened after the matching tag, then the tag itself.
          let top: number;
          do {
            top = stack.pop()!;
            openCount[top]!--;
            out += CLOSE[top]!;
          } while (top !== id);
        }
        i = Math.floor(tag / END_UNIT); // the index of '>'; the loop's i++ moves past it
        runStart = i + 1;
        continue;
      }
      // Not an allowlisted tag, an opener too deep or a closer with nothing to close: the '<' is text.
    }
    if (i > runStart) out += input.slice(runStart, i);
    out += escapeChar(c);
    runStart = i + 1;
    visible = true;
  }
  out += input.slice(runStart);
  for (let k = stack.length - 1; k >= 0; k--) out += CLOSE[stack[k]!]!;
  return { html: out, hasVisibleText: visible };
}

/** Escape text for HTML with no tags at all (attachment names, anything shown as plain text). */
export function escapeHtml(text: string): string {
  const n = text.length;
  let i = 0;
  while (i < n && !isSpecial(text.charCodeAt(i))) i++;
  if (i === n) return text;
  let out = text.slice(0, i);
  let runStart = i;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    if (!isSpecial(c)) continue;
    out += text.slice(runStart, i) + escapeChar(c);
    runStart = i + 1;
  }
  return out + text.slice(runStart);
}

/**
 * The whitespace `String#trim` removes (ECMAScript WhiteSpace + LineTerminator). Exported so the
 * other content modules agree on what "blank" and "whitespace-delimited" mean.
 */
export function isWhitespaceCode(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  if (c < 0xa0) return false;
  return (
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

/**
 * Whitespace, or a BMP character that renders as nothing on its own: zero-width characters and
 * joiners, bidi marks, invisible operators, soft hyphen, combining grapheme joiner, Hangul and
 * Braille fillers, variation selectors, the reserved U+FFF0–FFF8 and the interlinear annotation
 * controls U+FFF9–FFFB. Text made only of these (and the astral ones of
 * `isBlankCodePoint`) is an empty bubble or a blank name — refused like whitespace. Inside
 * visible text they stay (ZWJ emoji sequences need them). Surrogates are judged by `blankAt`.
 */
function isBlankCode(c: number): boolean {
  if (c < 0xad) return isWhitespaceCode(c);
  return (
    isWhitespaceCode(c) ||
    c === 0xad ||
    c === 0x34f ||
    c === 0x61c ||
    c === 0x115f ||
    c === 0x1160 ||
    c === 0x17b4 ||
    c === 0x17b5 ||
    (c >= 0x180b && c <= 0x180f) ||
    (c >= 0x200b && c <= 0x200f) ||
    (c >= 0x2060 && c <= 0x206f) ||
    c === 0x2800 ||
    c === 0x3164 ||
    (c >= 0xfe00 && c <= 0xfe0f) ||
    c === 0xffa0 ||
    (c >= 0xfff0 && c <= 0xfffb) // reserved, then the interlinear annotation controls (format, drawn as nothing)
  );
}

/**
 * As `isBlankCode`, for any code point: the astral default-ignorable ones too — shorthand format
 * controls (U+1BCA0–1BCA3), musical format controls (U+1D173–1D17A), tag characters and variation
 * selectors (U+E0000–E0FFF) — and the Egyptian hieroglyph format controls (U+13430–1343F), which
 * Unicode leaves out of Default_Ignorable but which draw nothing on their own.
 */
function isBlankCodePoint(cp: number): boolean {
  if (cp <= 0xffff) return isBlankCode(cp);
  return (
    (cp >= 0x13430 && cp <= 0x1343f) || // Egyptian hieroglyph format controls (joiners: nothing alone)
    (cp >= 0x1bca0 && cp <= 0x1bca3) ||
    (cp >= 0x1d173 && cp <= 0x1d17a) ||
    (cp >= 0xe0000 && cp <= 0xe0fff)
  );
}

/**
 * Whether the character at `i` is blank. A surrogate pair is judged whole at its high surrogate,
 * so its low one counts as blank; a lone surrogate is not (the content policy refuses it first).
 */
function blankAt(s: string, i: number): boolean {
  const c = s.charCodeAt(i);
  if (c < 0xd800 || c > 0xdfff) return isBlankCode(c);
  if (c >= 0xdc00) return true;
  const d = s.charCodeAt(i + 1);
  return d >= 0xdc00 && d <= 0xdfff && isBlankCodePoint(((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000);
}

/** True when `s[from, to)` holds only blank characters (`blankAt`). */
export function isBlankRange(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!blankAt(s, i)) return false;
  return true;
}

const LT = 0x3c;
const GT = 0x3e;
const AMP = 0x26;
const QUOT = 0x22;
const APOS = 0x27;
const SLASH = 0x2f;

const OPEN = ALLOWED_TAGS.map((t) => `<${t}>`);
const CLOSE = ALLOWED_TAGS.map((t) => `</${t}>`);
const LONGEST_TAG = 6; // "strong"

function isSpecial(c: number): boolean {
  return c === LT || c === GT || c === AMP || c === QUOT || c === APOS;
}

function escapeChar(c: number): string {
  switch (c) {
    case LT:
      return '&lt;';
    case GT:
      return '&gt;';
    case AMP:
      return '&amp;';
    case QUOT:
      return '&quot;';
    default:
      return '&#39;';
  }
}

/** Whitespace the HTML tokenizer accepts inside a tag: TAB LF FF CR SPACE. */
function isTagSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d;
}

// matchTag packs its answer in one number (no allocation per '<'): end * 16 + closing * 8 + id.
// Arithmetic, not shifts, so any string length fits; `& mask` still reads the low bits exactly.
const ID_MASK = 0b111;
const CLOSING_BIT = 0b1000;
const END_UNIT = 16;

/**
 * Match an exact allowlisted tag token at `start` (which holds '<'). Returns -1, or the packed
 * tag id, closing flag and index of its '>'.
 */
function matchTag(s: string, start: number): number {
  const n = s.length;
  let j = start + 1;
  const closing = j < n && s.charCodeAt(j) === SLASH;
  if (closing) j++;
  const nameStart = j;
  // Names are ASCII letters; stop after LONGEST_TAG + 1 so a long word costs O(1).
  while (j < n && j - nameStart <= LONGEST_TAG && isAsciiLetter(s.charCodeAt(j))) j++;
  const len = j - nameStart;
  if (len === 0 || len > LONGEST_TAG) return -1;
  const id = tagId(s, nameStart, len);
  if (id < 0) return -1;
  // Stops at the first non-space: a run of spaces is scanned here once and once more as text.
  while (j < n && isTagSpace(s.charCodeAt(j))) j++;
  if (j >= n || s.charCodeAt(j) !== GT) return -1;
  return j * END_UNIT + (closing ? CLOSING_BIT : 0) + id;
}

function isAsciiLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** Index into ALLOWED_TAGS of s[from, from+len) compared case-insensitively, or -1. */
function tagId(s: string, from: number, len: number): number {
  for (let t = 0; t < ALLOWED_TAGS.length; t++) {
    const name = ALLOWED_TAGS[t]!;
    if (name.length !== len) continue;
    let k = 0;
    while (k < len && (s.charCodeAt(from + k) | 0x20) === name.charCodeAt(k)) k++;
    if (k === len) return t;
  }
  return -1;
}
