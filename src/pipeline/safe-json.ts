/**
 * JSON parsing for untrusted frames. `JSON.parse` itself never invokes setters, so `__proto__`
 * becomes an ordinary own key; a frame holding a `__proto__`, `constructor` or `prototype` key
 * anywhere is refused (`forbidden_key`, answered as the unknown key it is), so that no later merge
 * or spread can turn one into prototype pollution. Nesting depth is bounded before parsing (cheap
 * scan), and non-object roots are refused.
 */
export const MAX_JSON_DEPTH = 8;

export type SafeJsonResult = { ok: true; value: Record<string, unknown> } | { ok: false; reason: 'invalid_json' | 'invalid_format' | 'forbidden_key' };

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const MAY_HOLD_FORBIDDEN_KEY = /__proto__|constructor|prototype|\\u/;

/** Set by the reviver when it dropped a forbidden key (one parse at a time: JSON.parse is synchronous). */
let sawForbiddenKey = false;

function reviver(key: string, value: unknown): unknown {
  if (!FORBIDDEN_KEYS.has(key)) return value;
  sawForbiddenKey = true;
  return undefined;
}

/** Max nesting of `{`/`[` outside strings, stopping early past `limit`. */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped char
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/**
 * True when the text holds at most `limit` of `{` and `[` in all (strings included), so its nesting
 * cannot exceed `limit`. `indexOf` runs in native code: most frames are decided here without the
 * character-by-character scan.
 */
export function bracketsAtMost(text: string, limit: number): boolean {
  let n = 0;
  for (let i = text.indexOf('{'); i !== -1; i = text.indexOf('{', i + 1)) if (++n > limit) return false;
  for (let i = text.indexOf('['); i !== -1; i = text.indexOf('[', i + 1)) if (++n > limit) return false;
  return true;
}

export function parseSafeJson(text: string): SafeJsonResult {
  if (!bracketsAtMost(text, MAX_JSON_DEPTH) && jsonDepthExceeds(text, MAX_JSON_DEPTH)) return { ok: false, reason: 'invalid_format' };
  let value: unknown;
  sawForbiddenKey = false;
  try {
    // The reviver costs a callback per key; only pay it when a forbidden key could be present,
    // spelled plainly or with `\u` escapes (`"\u005f_proto__"` parses to the key `__proto__`).
    value = MAY_HOLD_FORBIDDEN_KEY.test(text) ? JSON.parse(text, reviver) : JSON.parse(text);
  } catch {
    return { ok: false, reason: 'invalid_json' };
  }
  if (sawForbiddenKey) return { ok: false, reason: 'forbidden_key' };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'invalid_format' };
  return { ok: true, value: value as Record<string, unknown> };
}
