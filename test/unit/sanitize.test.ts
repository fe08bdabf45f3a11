import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseFragment } from 'parse5';
import type { DefaultTreeAdapterMap } from 'parse5';
import {
  ALLOWED_TAGS,
  MAX_TAG_DEPTH,
  escapeHtml,
  sanitizeHtml,
  sanitizeHtmlDetailed,
} from '../../src/chat/sanitize.js';

type Node = DefaultTreeAdapterMap['node'];
type ParentNode = DefaultTreeAdapterMap['parentNode'];

const ALLOWED = new Set(ALLOWED_TAGS);
const RUNS = 2500;
const SEED = 20240611;

// ---------------------------------------------------------------------------------------------
// How a browser sees the output: parse5 is a spec-compliant HTML parser.

interface Walk {
  /** Open/close events in tree order, e.g. ['+b', '+i', '-i', '-b']. */
  skeleton: string[];
  text: string;
  problems: string[];
}

function walk(html: string): Walk {
  const result: Walk = { skeleton: [], text: '', problems: [] };
  const visit = (node: Node): void => {
    if (node.nodeName === '#text') {
      result.text += (node as DefaultTreeAdapterMap['textNode']).value;
      return;
    }
    if (node.nodeName === '#comment') {
      result.problems.push('comment node');
      return;
    }
    if (node.nodeName === '#documentType') {
      result.problems.push('doctype node');
      return;
    }
    const el = node as DefaultTreeAdapterMap['element'];
    if (!ALLOWED.has(el.tagName)) result.problems.push(`element <${el.tagName}>`);
    if (el.attrs.length > 0) result.problems.push(`attributes on <${el.tagName}>`);
    result.skeleton.push(`+${el.tagName}`);
    for (const child of el.childNodes) visit(child);
    result.skeleton.push(`-${el.tagName}`);
  };
  const fragment: ParentNode = parseFragment(html);
  for (const child of fragment.childNodes) visit(child);
  return result;
}

/** The tag skeleton written in the output string itself. */
function outputSkeleton(html: string): string[] {
  return [...html.matchAll(/<(\/?)([a-z]+)>/g)].map((m) => `${m[1] === '/' ? '-' : '+'}${m[2]}`);
}

const ALLOWED_TOKEN = /<\/?(?:b|i|em|strong|code|pre)[\t\n\f\r ]*>/gi;

/** Context-free safety: apart from canonical allowed tags, no `< > " '` and only our entities. */
function assertLexicallySafe(html: string): void {
  const rest = html.replace(/<\/?(?:b|i|em|strong|code|pre)>/g, '');
  assert.ok(!/[<>"']/.test(rest), `raw markup char in output: ${JSON.stringify(html)}`);
  assert.ok(!/&(?!(?:amp|lt|gt|quot|#39);)/.test(rest), `stray & in output: ${JSON.stringify(html)}`);
}

function assertBrowserSafe(input: string): string {
  const out = sanitizeHtml(input);
  assertLexicallySafe(out);
  const w = walk(out);
  assert.deepEqual(w.problems, [], `input ${JSON.stringify(input)} → ${JSON.stringify(out)}`);
  // The parser built exactly the nesting we wrote: balanced, nothing re-parented or reopened.
  assert.deepEqual(w.skeleton, outputSkeleton(out), `restructured: ${JSON.stringify(out)}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Generators: hostile HTML fragments mixed with allowed tags and arbitrary unicode.

const caseMix = (s: string): fc.Arbitrary<string> =>
  fc
    .array(fc.boolean(), { minLength: s.length, maxLength: s.length })
    .map((flags) => [...s].map((ch, k) => (flags[k] ? ch.toUpperCase() : ch)).join(''));

const tagSpace = fc.constantFrom('', '', ' ', '  ', '\t', '\n', '\f', '\r');

const allowedTag = fc
  .tuple(fc.boolean(), fc.constantFrom(...ALLOWED_TAGS).chain(caseMix), tagSpace)
  .map(([closing, name, ws]) => `<${closing ? '/' : ''}${name}${ws}>`);

const hostileTag = fc.constantFrom(
  '<script>',
  '</script>',
  '<script src=//evil>',
  '<img src=x onerror=alert(1)>',
  '<b onclick=alert(1)>',
  '<b class="x">',
  "<i title='a>b'>",
  '<b/>',
  '<b />',
  '</b/>',
  '<svg><script>alert(1)</script></svg>',
  '<svg onload=alert(1)>',
  '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
  '<a href="javascript:alert(1)">',
  '<iframe srcdoc="<script>">',
  '<style>',
  '<textarea>',
  '<title>',
  '<noscript>',
  '<xmp>',
  '<plaintext>',
  '<template>',
  '<!-- x -->',
  '<!--',
  '-->',
  '--!>',
  '<![CDATA[',
  ']]>',
  '<?xml version="1.0"?>',
  '<!DOCTYPE html>',
  '<!>',
  '</>',
  '<>',
  '<b',
  '<b\u0000>',
  '< b>',
  '<bb>',
  '<strongest>',
  '<pre\u00a0>',
  '&lt;script&gt;',
  '&#60;',
  '&#x3c;',
  '&amp;',
  '&',
  '&lt',
  '&nbsp;',
);

const specialChar = fc.constantFrom('<', '>', '&', '"', "'", '/', '!', '-', '=', '?', ';', '#', ' ', '`');

const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)); // incl. lone surrogates

const fragment = fc.oneof(
  { arbitrary: allowedTag, weight: 4 },
  { arbitrary: hostileTag, weight: 3 },
  { arbitrary: specialChar, weight: 3 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 6 }), weight: 2 },
  { arbitrary: fc.string({ unit: anyUnit, maxLength: 4 }), weight: 1 },
);

/** Mixed hostile input. ≤ 32 fragments, so ≤ 32 openers: the depth cap is never reached. */
const hostileInput = fc.array(fragment, { maxLength: MAX_TAG_DEPTH }).map((parts) => parts.join(''));

/** Same, without the characters the HTML parser itself rewrites in text (CR, NUL) or drops (LF after <pre>). */
const textStableInput = hostileInput.map((s) => s.replace(/[\r\n\u0000]/g, ''));

/**
 * What the text content must be: the input minus the allowed tag tokens that act (an opener; a
 * closer of a tag that is open, closing what opened after it) — all else is shown verbatim.
 */
function expectedText(input: string): string {
  const open: string[] = [];
  return input.replace(ALLOWED_TOKEN, (token: string) => {
    const name = /^<\/?([a-z]+)/i.exec(token)![1]!.toLowerCase();
    if (!token.startsWith('</')) {
      open.push(name);
      return '';
    }
    const at = open.lastIndexOf(name);
    if (at === -1) return token; // nothing to close: shown as typed
    open.length = at;
    return '';
  });
}

const params = (numRuns = RUNS): fc.Parameters<[string]> => ({ numRuns, seed: SEED, verbose: 1 });

// ---------------------------------------------------------------------------------------------
// Examples

test('plain text is returned unchanged (same string)', () => {
  const s = 'hello world, ça va? 😀 @bob #tag https://example.com/a?b=1';
  assert.equal(sanitizeHtml(s), s);
  assert.equal(sanitizeHtml(''), '');
});

test('script tags are shown as text, never executed', () => {
  assert.equal(sanitizeHtml('<script>alert(1)</script>'), '&lt;script&gt;alert(1)&lt;/script&gt;');
  assertBrowserSafe('<script>alert(1)</script>');
});

test('img onerror and svg script are text', () => {
  assert.equal(sanitizeHtml('<img src=x onerror=alert(1)>'), '&lt;img src=x onerror=alert(1)&gt;');
  assert.equal(sanitizeHtml('<svg><script>alert(1)</script>'), '&lt;svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
});

test('an allowed tag with attributes is escaped whole (never repaired into <b>)', () => {
  assert.equal(sanitizeHtml('<b onclick=alert(1)>x</b>'), '&lt;b onclick=alert(1)&gt;x&lt;/b&gt;');
  assert.equal(sanitizeHtml('<b class="x">y'), '&lt;b class=&quot;x&quot;&gt;y');
});

test('comments, CDATA, processing instructions and doctypes are text', () => {
  assert.equal(sanitizeHtml('<!-- <b>hi</b> -->'), '&lt;!-- <b>hi</b> --&gt;');
  assert.equal(sanitizeHtml('<![CDATA[x]]>'), '&lt;![CDATA[x]]&gt;');
  assert.equal(sanitizeHtml('<?php echo 1 ?>'), '&lt;?php echo 1 ?&gt;');
  assert.equal(sanitizeHtml('<!DOCTYPE html>'), '&lt;!DOCTYPE html&gt;');
  for (const s of ['<!-- x -->', '<![CDATA[', '<?x?>', '<!DOCTYPE html>']) assertBrowserSafe(s);
});

test('allowed tags: case-insensitive, whitespace before > only, emitted canonical', () => {
  assert.equal(sanitizeHtml('<B>x</B>'), '<b>x</b>');
  assert.equal(sanitizeHtml('<StRoNg>x</sTrOnG >'), '<strong>x</strong>');
  assert.equal(sanitizeHtml('<em\n>x</em\t>'), '<em>x</em>');
  assert.equal(sanitizeHtml('< b>x'), '&lt; b&gt;x');
  assert.equal(sanitizeHtml('<b/>x'), '&lt;b/&gt;x');
  assert.equal(sanitizeHtml('</b/>x'), '&lt;/b/&gt;x');
  assert.equal(sanitizeHtml('<code><pre>x</pre></code>'), '<code><pre>x</pre></code>');
});

test('balancing: unclosed closed at end, a closer with nothing to close is text (as typed), interleaving fixed', () => {
  assert.equal(sanitizeHtml('<b>bold'), '<b>bold</b>');
  assert.equal(sanitizeHtml('<b><i>x'), '<b><i>x</i></b>');
  assert.equal(sanitizeHtml('x</b>y'), 'x&lt;/b&gt;y');
  assert.equal(sanitizeHtml('use </b> to close bold'), 'use &lt;/b&gt; to close bold');
  assert.equal(walk(sanitizeHtml('<i class="x">t</i>')).text, '<i class="x">t</i>', 'the typed closer stays');
  assert.deepEqual(sanitizeHtmlDetailed('</b>'), { html: '&lt;/b&gt;', hasVisibleText: true });
  assert.equal(sanitizeHtml('<b><i></b></i>'), '<b><i></i></b>&lt;/i&gt;');
  assert.equal(sanitizeHtml('<b>1<i>2</b>3</i>4'), '<b>1<i>2</i></b>3&lt;/i&gt;4');
  for (const s of ['<b><i></b></i>', '<b>1<i>2</b>3</i>4', '</i></b><b>']) assertBrowserSafe(s);
});

test('entities are kept literal: & is always escaped', () => {
  assert.equal(sanitizeHtml('&lt;script&gt;'), '&amp;lt;script&amp;gt;');
  assert.equal(sanitizeHtml('&#60;b&#62;'), '&amp;#60;b&amp;#62;');
  assert.equal(sanitizeHtml(`Tom & "Jerry's"`), 'Tom &amp; &quot;Jerry&#39;s&quot;');
  assert.equal(walk(sanitizeHtml('&lt;b&gt; & &amp;')).text, '&lt;b&gt; & &amp;');
});

test('escapeHtml escapes everything, tags included', () => {
  assert.equal(escapeHtml('plain.txt'), 'plain.txt');
  assert.equal(escapeHtml('<b>a</b> & "q" \'s\''), '&lt;b&gt;a&lt;/b&gt; &amp; &quot;q&quot; &#39;s&#39;');
});

test('<pre> followed by LF: the HTML parser drops that one LF (documented, harmless)', () => {
  const out = sanitizeHtml('<pre>\ncode\n</pre>');
  assert.equal(out, '<pre>\ncode\n</pre>');
  assert.equal(walk(out).text, 'code\n');
});

test('hasVisibleText: tags and whitespace alone are blank, escaped text is not', () => {
  assert.equal(sanitizeHtmlDetailed('<b></b>').hasVisibleText, false);
  assert.equal(sanitizeHtmlDetailed(' <i> \n\t\u00a0\u3000</i> ').hasVisibleText, false);
  assert.equal(sanitizeHtmlDetailed('   ').hasVisibleText, false);
  assert.equal(sanitizeHtmlDetailed('').hasVisibleText, false);
  assert.equal(sanitizeHtmlDetailed('<b>x</b>').hasVisibleText, true);
  assert.equal(sanitizeHtmlDetailed('<script></script>').hasVisibleText, true);
  assert.equal(sanitizeHtmlDetailed('</b>').hasVisibleText, true, 'a closer with nothing to close is text');
});

test('nesting is capped: openers beyond MAX_TAG_DEPTH are text', () => {
  const out = sanitizeHtml('<b>'.repeat(MAX_TAG_DEPTH + 2) + 'x');
  assert.equal(out, '<b>'.repeat(MAX_TAG_DEPTH) + '&lt;b&gt;&lt;b&gt;x' + '</b>'.repeat(MAX_TAG_DEPTH));
  assertBrowserSafe('<b>'.repeat(MAX_TAG_DEPTH + 2) + 'x');
});

// Their cost (and linearity: 10× the input, ~10× the time) is measured in bench/sanitize-bench.ts;
// tests assert no timings.
test('pathological 5000-char inputs: bounded output, browser-safe', () => {
  const bombs = [
    '<b>'.repeat(1666) + 'xx',
    '<b><i>'.repeat(833) + 'xx',
    '<'.repeat(5000),
    '<b' + ' '.repeat(4998),
    '<b '.repeat(1666) + 'xx',
    '</b>'.repeat(1250),
    '<strong'.repeat(714) + 'xx',
    '&'.repeat(5000),
    '"'.repeat(5000),
    ('<b>'.repeat(32) + '</b>'.repeat(32)).repeat(22),
  ];
  for (const bomb of bombs) {
    assert.ok(bomb.length <= 5002, `bomb length ${bomb.length}`);
    const out = sanitizeHtml(bomb);
    assert.ok(out.length <= 6 * bomb.length);
    assertBrowserSafe(bomb);
  }
});

// ---------------------------------------------------------------------------------------------
// Properties

test('property: output parses to allowed elements only, no attributes, no comments, as written', () => {
  fc.assert(
    fc.property(hostileInput, (input) => {
      assertBrowserSafe(input);
    }),
    params(),
  );
});

test('property: even past the depth cap and at any length, output stays safe and bounded', () => {
  const deep = fc.array(fc.oneof(allowedTag, allowedTag, fragment), { minLength: 30, maxLength: 120 }).map((p) => p.join(''));
  fc.assert(
    fc.property(deep, (input) => {
      const out = assertBrowserSafe(input);
      assert.ok(out.length <= 6 * input.length || input.length === 0);
    }),
    params(),
  );
});

test('property: text content equals the input minus allowed tag tokens (what you type is what you see)', () => {
  fc.assert(
    fc.property(textStableInput, (input) => {
      assert.equal(walk(sanitizeHtml(input)).text, expectedText(input));
    }),
    params(),
  );
});

test('property: input without < and & renders as exactly itself', () => {
  const noMarkup = fc.string({ unit: fc.oneof(anyUnit, specialChar), maxLength: 200 }).map((s) => s.replace(/[<&\r\u0000]/g, ''));
  fc.assert(
    fc.property(noMarkup, (input) => {
      const out = sanitizeHtml(input);
      if (!/[>"']/.test(input)) assert.equal(out, input);
      assert.equal(walk(out).text, input);
    }),
    params(),
  );
});

test('property: sanitizing twice keeps the tag skeleton; the second pass only escapes the first', () => {
  // Not idempotent by design (& is always escaped), but stable: the second pass adds no markup and
  // shows the first output's source as text, tags aside.
  fc.assert(
    fc.property(textStableInput, (input) => {
      const once = sanitizeHtml(input);
      const twice = sanitizeHtml(once);
      assert.deepEqual(outputSkeleton(twice), outputSkeleton(once));
      assert.equal(walk(twice).text, expectedText(once));
    }),
    params(),
  );
});

test('property: escapeHtml output has no elements and shows the input verbatim', () => {
  fc.assert(
    fc.property(textStableInput, (input) => {
      const w = walk(escapeHtml(input));
      assert.deepEqual(w.skeleton, []);
      assert.deepEqual(w.problems, []);
      assert.equal(w.text, input);
    }),
    params(),
  );
});
