import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkContent, markRunTooLong, type ContentPolicy } from '../../src/chat/content-policy.js';
import { MAX_COMBINING_MARKS } from '../../src/protocol/bounds.js';

const refused = (text: string, policy: ContentPolicy = 'standard'): string | undefined => {
  const r = checkContent(text, policy);
  return r.ok ? undefined : r.rule;
};

test('standard: ordinary text, emoji, RTL text with marks, TAB and LF pass', () => {
  for (const s of [
    'hello',
    '',
    'line one\nline two\tindented',
    'emoji 😀👍🏽 and 𝒳',
    'שלום \u200Fעולם\u200E مرحبا \u061C',
    'shell-ish ; && || > < ` $( \\ is fine in standard',
    'nbsp\u00a0and zero-width\u200b',
    '\u00a0\u00ff\u0100',
  ]) {
    assert.deepEqual(checkContent(s, 'standard'), { ok: true }, JSON.stringify(s));
  }
});

test('standard: C0 controls except TAB/LF, CR, DEL and C1 controls are control_char', () => {
  for (let c = 0; c < 0x20; c++) {
    if (c === 0x09 || c === 0x0a) continue;
    assert.equal(refused(`a${String.fromCharCode(c)}b`), 'control_char', `U+${c.toString(16)}`);
  }
  assert.equal(refused('a\r\nb'), 'control_char');
  assert.equal(refused('a\rb'), 'control_char');
  assert.equal(refused('\u0000'), 'control_char');
  assert.equal(refused('a\u007fb'), 'control_char');
  for (let c = 0x80; c <= 0x9f; c++) assert.equal(refused(`x${String.fromCharCode(c)}`), 'control_char');
});

test('standard: bidi embeddings, overrides and isolates are bidi_override', () => {
  for (const c of [0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069]) {
    assert.equal(refused(`invoice${String.fromCharCode(c)}fdp.exe`), 'bidi_override', `U+${c.toString(16)}`);
  }
  assert.equal(refused('\u2029\u2065\u206a'), undefined); // neighbours are fine
});

test('standard: lone surrogates are lone_surrogate, pairs pass', () => {
  assert.equal(refused('a\ud83d'), 'lone_surrogate');
  assert.equal(refused('\ud83da'), 'lone_surrogate');
  assert.equal(refused('\ude00x'), 'lone_surrogate');
  assert.equal(refused('\ude00\ud83d'), 'lone_surrogate');
  assert.equal(refused('\ud83d\ud83d\ude00'), 'lone_surrogate');
  assert.equal(refused('\ud83d\ude00'), undefined);
  assert.equal(refused('\udbff\udfff'), undefined);
});

test('strict: the article list is strict_pattern, newlines and tabs are control_char', () => {
  for (const s of ['a;b', 'a && b', 'a || b', 'a > b', 'a < b', 'a `id` b', 'a $(id) b', 'a\\b']) {
    assert.equal(refused(s, 'strict'), 'strict_pattern', s);
    assert.equal(refused(s, 'standard'), undefined, s);
  }
  assert.equal(refused('a\nb', 'strict'), 'control_char');
  assert.equal(refused('a\tb', 'strict'), 'control_char');
  for (const s of ['a & b', 'a | b', 'costs $5 (approx)', 'plain text.', 'x\u202ey']) {
    assert.equal(refused(s, 'strict'), s === 'x\u202ey' ? 'bidi_override' : undefined, s);
  }
});

test('the first offending character decides the rule; the result never echoes content', () => {
  assert.equal(refused('\u202e\u0000'), 'bidi_override');
  assert.equal(refused('\u0000\u202e'), 'control_char');
  assert.equal(refused('; \n', 'strict'), 'strict_pattern');
  const r = checkContent('secret\u0001payload', 'standard');
  assert.deepEqual(r, { ok: false, rule: 'control_char' });
  assert.ok(!JSON.stringify(r).includes('secret'));
});

test(`markRunTooLong: more than ${MAX_COMBINING_MARKS} combining marks in a row ("Zalgo" text); real scripts pass`, () => {
  const marks = (n: number, from = 0x300): string => Array.from({ length: n }, (_, i) => String.fromCodePoint(from + (i % 0x70))).join('');
  const tooLong = (text: string, html = false): boolean => markRunTooLong(text, html);
  assert.equal(MAX_COMBINING_MARKS, 16);
  assert.equal(tooLong(`a${marks(16)}`), false);
  assert.equal(tooLong(`a${marks(17)}`), true);
  assert.equal(tooLong(`${marks(17)}`), true, 'with no base at all');
  assert.equal(tooLong(`a${marks(16)}b${marks(16)}c`), false, 'each base carries its own');
  // What draws nothing among the marks neither counts nor breaks the run (a renderer stacks
  // across it: Chromium does across U+2060, U+2062 and ZWNJ): ZWJ, ZWNJ, word joiner, invisible
  // operators, tag characters. A spacing mark (Mc) or an enclosing one (Me) counts.
  assert.equal(tooLong(`a${marks(8)}\u200d${marks(8)}`), false, '16 marks');
  assert.equal(tooLong(`a${marks(8)}\u200d${marks(9)}`), true);
  assert.equal(tooLong(`a${marks(8)}\u200c${marks(8)}\u0903`), true);
  // Alone, such characters stack nothing: not a run of marks (a variation selector is a mark, Mn).
  assert.equal(tooLong(`hello${'\u200b'.repeat(17)}`), false);
  assert.equal(tooLong(`a${'\u00ad'.repeat(17)}b`), false);
  assert.equal(tooLong(`x${'\ufe0f'.repeat(17)}`), true);
  for (const sep of ['\u2060', '\u2062', '\u{E0041}']) assert.equal(tooLong(`e${`${marks(16)}${sep}`.repeat(4)}`), true, `across U+${sep.codePointAt(0)!.toString(16)}`);
  // A line break or a tab ends the run (the marks after it have the next line's letter, or none).
  assert.equal(tooLong(`e${marks(16)}\n${marks(1)}x`), false);
  assert.equal(tooLong(`e${marks(16)}\t${marks(1)}x`), false);
  assert.equal(tooLong(`a${marks(16, 0x20d0)}\u20dd`), true);
  // Astral marks (musical symbols' combining marks, U+1D165…) count as one each.
  assert.equal(tooLong(`a${'\u{1d167}'.repeat(17)}`), true);
  // Sanitized HTML: a kept tag draws nothing (part of the run), a block tag breaks the line.
  assert.equal(tooLong(`e${marks(16)}<b></b>${marks(16)}`, true), true);
  assert.equal(tooLong(`e${marks(16)}<pre>${marks(16)}x</pre>`, true), false);
  assert.equal(tooLong(`e${marks(16)}&lt;/b&gt;${marks(16)}`, true), false, 'a tag shown as text is letters');
  assert.equal(tooLong(`e${marks(16)}<b></b>${marks(16)}`, false), false, 'as written (a name): `<b>` is shown');
  for (const s of [
    'Vie\u0302\u0323t Nam (decomposed)',
    'בְּרֵאשִׁ֖ית בָּרָ֣א', // Hebrew with points and cantillation
    'བསྒྲུབས ཧྲཱིཿ ྐྵྰ', // Tibetan stacks
    'नमस्ते क्षत्रिय', // Devanagari
    'keycap 1\ufe0f\u20e3, flag 🏳️‍🌈, family 👩🏽‍👩🏽‍👧🏽, eye 👁️‍🗨️, England 🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}',
    'שלום\u200F \u200Eabc',
  ]) {
    assert.equal(tooLong(s), false, s);
  }
});

/** Reference: the same policy written as regexes, independently of the one-pass implementation. */
function referenceRule(text: string, policy: ContentPolicy): string | undefined {
  const checks: [RegExp, string][] = [
    [policy === 'strict' ? /[\u0000-\u001f\u007f-\u009f]/ : /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, 'control_char'],
    [/[\u202a-\u202e\u2066-\u2069]/, 'bidi_override'],
    [/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/, 'lone_surrogate'],
  ];
  if (policy === 'strict') checks.push([/[;<>`\\]|&&|\|\||\$\(/, 'strict_pattern']);
  let best: { at: number; rule: string } | undefined;
  for (const [re, rule] of checks) {
    const m = re.exec(text);
    if (m && (best === undefined || m.index < best.at)) best = { at: m.index, rule };
  }
  return best?.rule;
}

test('property: agrees with a regex reference on arbitrary UTF-16 (both policies)', () => {
  const unit = fc.oneof(
    fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
    fc.constantFrom(';', '&', '|', '$', '(', '<', '>', '`', '\\', '\n', '\t', '\r', 'a', ' ', '\u202e', '\u2066', '😀'),
    fc.constantFrom('\ud83d', '\ude00'),
  );
  fc.assert(
    fc.property(fc.string({ unit, maxLength: 40 }), fc.constantFrom<ContentPolicy>('standard', 'strict'), (text, policy) => {
      assert.equal(refused(text, policy), referenceRule(text, policy));
    }),
    { numRuns: 3000, seed: 7 },
  );
});

test('property: markRunTooLong agrees with a regex reference on text with marks and invisible characters', () => {
  const unit = fc.oneof(
    fc.constantFrom('a', ' ', '\n', '<', '>', '\u0301'.repeat(5), '\u0301', '\u20dd', '\u200d', '\u200b', '\u2060', '\u0903', '\u{1d167}', '\u{e0100}', '😀'),
    fc.integer({ min: 0x300, max: 0x36f }).map((c) => String.fromCharCode(c)),
  );
  // 17 marks, with nothing but default-ignorables between them.
  const reference = (text: string): boolean => /(?:\p{M}\p{Default_Ignorable_Code_Point}*){17}/u.test(text);
  fc.assert(
    fc.property(fc.string({ unit, maxLength: 60 }), (text) => {
      assert.equal(markRunTooLong(text, false), reference(text));
    }),
    { numRuns: 3000, seed: 11 },
  );
});

test('a 5000-char message with astral characters passes both policies (its cost: bench/sanitize-bench.ts)', () => {
  const s = 'abcdefghij 😀 '.repeat(400).slice(0, 5000);
  assert.deepEqual(checkContent(s, 'strict'), checkContent('abcdefghij 😀 ', 'strict'));
  assert.deepEqual(checkContent(s, 'standard'), checkContent('abcdefghij 😀 ', 'standard'));
});
