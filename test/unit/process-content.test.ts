import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { processContent, processContentStepByStep, sanitizeDisplayName, sanitizeAttachmentUrl } from '../../src/chat/process-content.js';
import { MAX_CONTENT_LENGTH } from '../../src/protocol/client-frames.js';
import { checkContent } from '../../src/chat/content-policy.js';
import { printedSeed } from '../helpers/seed.js';

test('a normal message passes with sanitized content and entities', () => {
  const r = processContent('hi @bob, <b>look</b> at https://example.com/x. #news', 'standard');
  assert.deepEqual(r, {
    ok: true,
    content: 'hi @bob, <b>look</b> at https://example.com/x. #news',
    mentions: ['bob'],
    hashtags: ['news'],
    links: [{ url: 'https://example.com/x', safe: true }],
  });
});

test('hostile markup is delivered as inert text', () => {
  const r = processContent('<img src=x onerror=alert(1)> <b onclick=x>hi', 'standard');
  assert.equal(r.ok, true);
  if (r.ok) assert.equal(r.content, '&lt;img src=x onerror=alert(1)&gt; &lt;b onclick=x&gt;hi');
});

test('<script></script> is not removed but escaped, so it is shown (not empty, not executable)', () => {
  // The sanitizer escapes every non-allowlisted tag rather than deleting it (see sanitize.ts).
  const r = processContent('<script></script>', 'standard');
  assert.deepEqual(r, { ok: true, content: '&lt;script&gt;&lt;/script&gt;', mentions: [], hashtags: [], links: [] });
});

test('nothing visible after sanitizing → invalid_content empty_after_sanitize', () => {
  for (const raw of ['<b></b>', '<i> </i>', '   ', '\n\t', '<b> </b>', '', '<b><i>\n</i></b>', '\u00a0\u3000']) {
    assert.deepEqual(
      processContent(raw, 'standard'),
      { ok: false, reason: 'invalid_content', rule: 'empty_after_sanitize' },
      JSON.stringify(raw),
    );
  }
});

// Zero-width characters, joiners, bidi marks, fillers (Hangul, Braille), variation selectors, tag
// characters and the astral format controls (shorthand, musical) render as nothing on their own:
// an empty bubble or a blank group name. Judged by code point, not by UTF-16 unit.
const INVISIBLE_ONLY = ['\u200B', '\u200C\u200D\u2060', '\u2800', '\u3164', '\u180E', '\u{E0020}', '<b>\u200B</b>', '\u00AD\u034F', '\u200E \uFE0F', '\uFFA0\u115F\u1160', ' \u2063 ', '\u{1D173}', '\u{1BCA0}\u{1BCA3}', '\u{E0100}', '\u{1D17A} \u200B', '\uFFF9\uFFFA\uFFFB', '\u{13430}\u{1343F}'];

test('invisible characters alone are blank → empty_after_sanitize, for content and names', () => {
  for (const raw of INVISIBLE_ONLY) {
    assert.deepEqual(processContent(raw, 'standard'), { ok: false, reason: 'invalid_content', rule: 'empty_after_sanitize' }, JSON.stringify(raw));
    if (raw.includes('<')) continue; // markup: refused by the strict policy's pattern first, and no name holds tags
    assert.deepEqual(processContent(raw, 'strict'), { ok: false, reason: 'invalid_content', rule: 'empty_after_sanitize' }, JSON.stringify(raw));
    assert.deepEqual(sanitizeDisplayName(raw), { ok: false, reason: 'invalid_content', rule: 'empty_after_sanitize' }, JSON.stringify(raw));
  }
});

test("every Default_Ignorable_Code_Point the content policy lets through is blank on its own (the list cannot drift from Unicode's)", () => {
  const IGNORABLE = /\p{Default_Ignorable_Code_Point}/u;
  const missed: string[] = [];
  for (let cp = 0; cp <= 0x10ffff; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const ch = String.fromCodePoint(cp);
    if (!IGNORABLE.test(ch) || !checkContent(ch, 'standard').ok) continue;
    const r = processContent(ch, 'standard');
    if (r.ok) missed.push(`U+${cp.toString(16).toUpperCase()}`);
  }
  assert.deepEqual(missed, []);
});

test('invisible characters inside visible text stay: ZWJ emoji, tag-sequence flags, a variation selector', () => {
  for (const raw of ['\u{1F468}\u200D\u{1F469}\u200D\u{1F467}', '\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}', '\u2764\uFE0F', 'a\u200Bb', '\u200Bx', '\u{1D11E}', '\u{1F600}', '\u{1D173}x']) {
    const r = processContent(raw, 'standard');
    assert.equal(r.ok, true, JSON.stringify(raw));
    assert.equal(r.ok && r.content, raw);
    assert.deepEqual(sanitizeDisplayName(raw), { ok: true, name: raw });
  }
});

test('a closer with nothing open to close is text, so not empty: "</b>" is shown as typed', () => {
  assert.deepEqual(processContent('</b>', 'standard'), { ok: true, content: '&lt;/b&gt;', mentions: [], hashtags: [], links: [] });
});

test('policy refusals come first, with the rule and never the content', () => {
  assert.deepEqual(processContent('hello \u202Egnp.exe', 'standard'), { ok: false, reason: 'invalid_content', rule: 'bidi_override' });
  assert.deepEqual(processContent('a\u0000b', 'standard'), { ok: false, reason: 'invalid_content', rule: 'control_char' });
  assert.deepEqual(processContent('a\rb', 'standard'), { ok: false, reason: 'invalid_content', rule: 'control_char' });
  assert.deepEqual(processContent('x\ud800', 'standard'), { ok: false, reason: 'invalid_content', rule: 'lone_surrogate' });
  assert.deepEqual(processContent('rm -rf /; echo', 'strict'), { ok: false, reason: 'invalid_content', rule: 'strict_pattern' });
  assert.deepEqual(processContent('<b>x</b>', 'strict'), { ok: false, reason: 'invalid_content', rule: 'strict_pattern' });
  assert.equal(processContent('fine & dandy', 'strict').ok, true);
});

test('raw content over MAX_CONTENT_LENGTH is refused; output may grow up to 6×', () => {
  assert.deepEqual(processContent('a'.repeat(MAX_CONTENT_LENGTH + 1), 'standard'), {
    ok: false,
    reason: 'invalid_content',
    rule: 'too_long',
  });
  const r = processContent('"'.repeat(MAX_CONTENT_LENGTH), 'standard');
  assert.equal(r.ok, true);
  if (r.ok) assert.equal(r.content.length, 6 * MAX_CONTENT_LENGTH);
});

test('property: accepted content is bounded and never blank; refusals carry a known rule', () => {
  const rules = new Set(['control_char', 'bidi_override', 'lone_surrogate', 'strict_pattern', 'too_long', 'empty_after_sanitize']);
  const unit = fc.oneof(
    fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
    fc.constantFrom('<b>', '</b>', '<i>', ' ', '\n', '<script>', '&', '"', 'x', '@bob', 'https://a.b'),
  );
  fc.assert(
    fc.property(fc.string({ unit, maxLength: 30 }), fc.constantFrom('standard' as const, 'strict' as const), (raw, policy) => {
      const r = processContent(raw, policy);
      if (r.ok) {
        assert.ok(r.content.length <= 6 * raw.length);
        assert.ok(r.content.replace(/<\/?(?:b|i|em|strong|code|pre)>/g, '').trim().length > 0);
      } else {
        assert.equal(r.reason, 'invalid_content');
        assert.ok(rules.has(r.rule), r.rule);
      }
    }),
    { numRuns: 2000, seed: 5 },
  );
});

test('attachment names: plain text escaping, no tags, control and bidi refused', () => {
  assert.deepEqual(sanitizeDisplayName('report.pdf'), { ok: true, name: 'report.pdf' });
  assert.deepEqual(sanitizeDisplayName('<b>x</b> & "y".png'), { ok: true, name: '&lt;b&gt;x&lt;/b&gt; &amp; &quot;y&quot;.png' });
  assert.deepEqual(sanitizeDisplayName('invoice\u202Efdp.exe'), { ok: false, reason: 'invalid_content', rule: 'bidi_override' });
  assert.deepEqual(sanitizeDisplayName('a\nb.txt'), { ok: false, reason: 'invalid_content', rule: 'control_char' });
  // Line and paragraph separators break the line in a renderer too: a one-line name holds none.
  assert.deepEqual(sanitizeDisplayName('a\u2028b.txt'), { ok: false, reason: 'invalid_content', rule: 'control_char' });
  assert.deepEqual(sanitizeDisplayName('a\u2029b'), { ok: false, reason: 'invalid_content', rule: 'control_char' });
  assert.deepEqual(sanitizeDisplayName('a\u0007.txt'), { ok: false, reason: 'invalid_content', rule: 'control_char' });
  assert.deepEqual(sanitizeDisplayName('   '), { ok: false, reason: 'invalid_content', rule: 'empty_after_sanitize' });
  assert.deepEqual(sanitizeDisplayName('n'.repeat(256)), { ok: false, reason: 'invalid_content', rule: 'too_long' });
});

test('attachment URLs: stored as the URL parser serializes them (no raw quote or angle bracket), control and bidi characters refused', () => {
  const ok = (raw: string): string => {
    const r = sanitizeAttachmentUrl(raw);
    assert.equal(r.ok, true, raw);
    return (r as { url: string }).url;
  };
  assert.equal(ok('https://files.example.com/a/b.png?x=1#f'), 'https://files.example.com/a/b.png?x=1#f');
  const attack = ok('https://a.example/x"><img src=x onerror=alert(1)>');
  assert.doesNotMatch(attack, /["<> ]/);
  assert.equal(attack, 'https://a.example/x%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E');
  assert.doesNotMatch(ok("https://a.example/?q='x'"), /'/);
  assert.equal(ok("https://a.example/x'onmouseover='alert(1)#f'g"), 'https://a.example/x%27onmouseover=%27alert(1)#f%27g', "' in a path and a fragment");
  assert.equal(ok('https://a.example/`x`?q=`y`#`z`'), 'https://a.example/%60x%60?q=%60y%60#%60z%60', 'backquotes everywhere');
  for (const u of ['https://a.example/p/a th?q=1 2#f g', 'https://a.example/"<>\'`']) assert.doesNotMatch(ok(u), /["'<>` ]/, u);
  assert.equal(ok('HTTPS://Files.Example.COM'), 'https://files.example.com/');
  assert.equal(ok('https://bücher.example/ä'), 'https://xn--bcher-kva.example/%C3%A4');
  for (const [raw, rule] of [
    ['https://a.example/\u202Egpj.exe', 'bidi_override'],
    ['https://a.example/a\tb', 'control_char'],
    ['https://a.example/a\nb', 'control_char'],
    ['https://a.example/a\u2028b', 'control_char'],
    ['https://a.example/\u0000', 'control_char'],
    [`https://a.example/${'é'.repeat(400)}`, 'too_long'],
  ] as const) {
    const r = sanitizeAttachmentUrl(raw);
    assert.equal(r.ok, false, raw);
    assert.equal((r as { rule: string }).rule, rule);
  }
});

test('the one-scan shortcut for inert ASCII text decides exactly as the three steps do (seeded generator)', (t) => {
  const seed = printedSeed(t);
  // Mostly inert characters, with every character a step acts on mixed in.
  const char = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...'abcXYZ019 .,!?-_()[]{}/\\;=+*~`$%^|'.split('')) },
    { weight: 2, arbitrary: fc.constantFrom('&', '<', '>', '"', "'", '@', '#', ':', '\t', '\n', '\r', '\u0000', '\u007f', 'é', '\u202e', ' ') },
  );
  fc.assert(
    fc.property(fc.array(char, { maxLength: 80 }).map((a) => a.join('')), (raw) => {
      assert.deepEqual(processContent(raw, 'standard'), processContentStepByStep(raw, 'standard'));
      assert.deepEqual(processContent(raw, 'strict'), processContentStepByStep(raw, 'strict'));
    }),
    { seed, numRuns: 2000 },
  );
  // And the shortcut is taken for plain text: the same string object comes back.
  const plain = 'See you at five, bring the slides (v2) - thanks!';
  const out = processContent(plain, 'standard');
  assert.ok(out.ok && out.content === plain && out.mentions.length === 0 && out.links.length === 0);
  assert.deepEqual(processContent('   \t\n ', 'standard'), processContentStepByStep('   \t\n ', 'standard'), 'blank: refused the same way');
});

test('an attachment URL is stored with no raw quote, angle bracket or space, wherever the URL parser leaves one (a host too)', () => {
  for (const url of ['https://x"onmouseover="alert(1).example/', "https://a.example/it's", 'https://a.example/?q=`x`', 'https://x<y>.example/']) {
    const r = sanitizeAttachmentUrl(url);
    if (r.ok) assert.doesNotMatch(r.url, /["'`<> ]/, url);
  }
});

test('combining marks are judged on the sanitized HTML: a kept tag between them draws nothing, one shown as text or a block ends the run', () => {
  const marks = (n: number): string => '\u0301'.repeat(n);
  for (const tag of ['<b></b>', '<i>', '<STRONG></STRONG>', '<b >', '<b\n></b\t>']) {
    const r = processContent(`e${`${marks(16)}${tag}`.repeat(4)}`, 'standard');
    assert.equal(r.ok ? undefined : r.rule, 'combining_marks', tag);
  }
  for (const raw of [
    `e${marks(16)}<b>x</b>${marks(16)}`, // a letter between the tags
    `e${marks(16)}<a>${marks(16)}`, // not an allowlisted tag: shown as text
    `e${marks(16)}</b>${marks(16)}`, // a closer with nothing to close: shown as text
    `e${marks(16)}<pre>${marks(16)}x</pre>`, // a block: a line break
  ]) {
    const r = processContent(raw, 'standard');
    assert.equal(r.ok, true, `${raw}: ${r.ok ? '' : r.rule}`);
  }
  // Names and attachment URLs are shown as written: a tag in them is letters.
  assert.equal(sanitizeDisplayName(`Ze${marks(16)}<b>${marks(16)}`).ok, true);
  assert.equal(sanitizeDisplayName(`Ze${marks(17)}`).ok, false);
  // A CR inside a tag is still refused as a control character.
  assert.equal(processContent(`e${marks(3)}<b\r>`, 'standard').ok, false);
});
