import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  extractEntities,
  MAX_ENTITIES,
  MAX_ENTITY_LENGTH,
  MAX_LINK_LENGTH,
  MAX_LINKS,
} from '../../src/chat/extract.js';

const links = (raw: string) => extractEntities(raw).links;

test('mentions and hashtags: word chars, deduplicated in order, not inside emails or words', () => {
  const r = extractEntities('hi @bob, @alice and @bob again! #rampart #ts_5 #rampart mail bob@example.com page#top');
  assert.deepEqual(r.mentions, ['bob', 'alice']);
  assert.deepEqual(r.hashtags, ['rampart', 'ts_5']);
});

test('mentions: punctuation before is fine, `&#39;` is no hashtag, empty names are ignored', () => {
  const r = extractEntities('(@carol) "@dave": <b>@eve</b> &#39; @ # @- #!');
  assert.deepEqual(r.mentions, ['carol', 'dave', 'eve']);
  assert.deepEqual(r.hashtags, []);
});

test('case-sensitive deduplication', () => {
  assert.deepEqual(extractEntities('@Bob @bob #Tag #tag').mentions, ['Bob', 'bob']);
});

test('names longer than 64 are ignored, not truncated; 64 is kept', () => {
  const ok = 'a'.repeat(MAX_ENTITY_LENGTH);
  const long = 'b'.repeat(MAX_ENTITY_LENGTH + 1);
  assert.deepEqual(extractEntities(`@${ok} @${long} #${long}`).mentions, [ok]);
  assert.deepEqual(extractEntities(`#${long}`).hashtags, []);
});

test('caps: at most MAX_ENTITIES mentions/hashtags and MAX_LINKS links', () => {
  const many = Array.from({ length: 200 }, (_, k) => `@u${k} #t${k} https://e.com/${k}`).join(' ');
  const r = extractEntities(many);
  assert.equal(r.mentions.length, MAX_ENTITIES);
  assert.equal(r.hashtags.length, MAX_ENTITIES);
  assert.equal(r.links.length, MAX_LINKS);
  assert.equal(r.mentions[0], 'u0');
});

test('http, https and mailto are safe links', () => {
  assert.deepEqual(links('see https://example.com/a?b=1&c=2 and http://x.org, mail mailto:bob@example.com'), [
    { url: 'https://example.com/a?b=1&c=2', safe: true },
    { url: 'http://x.org', safe: true },
    { url: 'mailto:bob@example.com', safe: true },
  ]);
  assert.deepEqual(extractEntities('mailto:bob@example.com').mentions, []);
  assert.deepEqual(links('HTTPS://EXAMPLE.COM'), [{ url: 'HTTPS://EXAMPLE.COM', safe: true }]);
  // A user or password before an http(s) host: it reads as one site and goes to another.
  assert.deepEqual(links('https://www.bank.example@evil.example/ http://u:p@h.example/'), [
    { url: 'https://www.bank.example@evil.example/', safe: false },
    { url: 'http://u:p@h.example/', safe: false },
  ]);
});

test('javascript:, data:, vbscript: in any disguise are unsafe (or not a link at all)', () => {
  assert.deepEqual(links('JaVaScRiPt:alert(1)'), [{ url: 'JaVaScRiPt:alert(1)', safe: false }]);
  assert.deepEqual(links(' javascript:alert(1)'), [{ url: 'javascript:alert(1)', safe: false }]);
  assert.deepEqual(links('x (javascript:alert(1))'), [{ url: 'javascript:alert(1)', safe: false }]);
  // A TAB splits the token: `java` is a word, `script:alert(1)` an unsafe link.
  assert.deepEqual(links('java\tscript:alert(1)'), [{ url: 'script:alert(1)', safe: false }]);
  assert.deepEqual(links('data:text/html;base64,PHNjcmlwdD4='), [{ url: 'data:text/html;base64,PHNjcmlwdD4=', safe: false }]);
  assert.deepEqual(links('vbscript:msgbox(1)'), [{ url: 'vbscript:msgbox(1)', safe: false }]);
  assert.deepEqual(links('file:///etc/passwd'), [{ url: 'file:///etc/passwd', safe: false }]);
  for (const l of links('javascript:alert(1) JAVASCRIPT://x%0aalert(1) data:,x vbscript:x')) {
    assert.equal(l.safe, false, l.url);
  }
});

test('an http(s) link carrying quotes or angle brackets is never safe', () => {
  assert.deepEqual(links(`https://x.com/a"onmouseover=alert(1)`), [{ url: 'https://x.com/a"onmouseover=alert(1)', safe: false }]);
  assert.equal(links("https://x.com/it's")[0]?.safe, false);
  assert.equal(links('https://x.com/`id`')[0]?.safe, false);
  assert.equal(links('http://')[0]?.safe, false); // does not parse
});

test('trailing punctuation: `.,;:!?` trimmed, `)` only when unbalanced', () => {
  assert.deepEqual(links('(see https://example.com/a).'), [{ url: 'https://example.com/a', safe: true }]);
  assert.deepEqual(links('https://example.com/x, and https://example.com/y!'), [
    { url: 'https://example.com/x', safe: true },
    { url: 'https://example.com/y', safe: true },
  ]);
  assert.deepEqual(links('https://en.wikipedia.org/wiki/Foo_(bar).'), [
    { url: 'https://en.wikipedia.org/wiki/Foo_(bar)', safe: true },
  ]);
  assert.deepEqual(links('<https://example.com/z>'), [{ url: 'https://example.com/z', safe: true }]);
  assert.deepEqual(links('"https://example.com/q"'), [{ url: 'https://example.com/q', safe: true }]);
  assert.deepEqual(links('[https://example.com/s]'), [{ url: 'https://example.com/s', safe: true }]);
});

test('prose with a colon is not a link; scheme-like prose with text after the colon is an unsafe one', () => {
  assert.deepEqual(links('note: buy milk at 10:30, re: it'), []);
  assert.deepEqual(links('ratio:3'), [{ url: 'ratio:3', safe: false }]);
  assert.deepEqual(extractEntities('@bob: hi').mentions, ['bob']);
});

test('duplicate links reported once; over-long link tokens are not reported', () => {
  assert.equal(links('https://a.com https://a.com. (https://a.com)').length, 1);
  const long = `https://e.com/${'a'.repeat(MAX_LINK_LENGTH)}`;
  assert.deepEqual(links(`${long} https://ok.com`), [{ url: 'https://ok.com', safe: true }]);
  assert.deepEqual(extractEntities(`${long}#tag`).hashtags, []);
});

test('nothing is extracted from inside a link', () => {
  const r = extractEntities('https://example.com/@bob/#frag https://example.com/a/#section');
  assert.deepEqual(r.mentions, []);
  assert.deepEqual(r.hashtags, []);
  assert.equal(r.links.length, 2);
});

test('property: results are bounded, well-formed and found in the raw text', () => {
  const unit = fc.oneof(
    fc.constantFrom('@', '#', ':', '/', '.', ',', '(', ')', '<', '>', ' ', '\t', '\n', 'a', 'Z', '_', '9', '&'),
    fc.constantFrom('https://', 'http:', 'mailto:', 'javascript:', 'JaVaScRiPt:', 'data:', 'x.com', '@bob', '#tag'),
    fc.string({ unit: 'grapheme', maxLength: 3 }),
  );
  fc.assert(
    fc.property(fc.array(unit, { maxLength: 60 }).map((a) => a.join('')), (raw) => {
      const r = extractEntities(raw);
      assert.ok(r.mentions.length <= MAX_ENTITIES && r.hashtags.length <= MAX_ENTITIES && r.links.length <= MAX_LINKS);
      for (const name of [...r.mentions, ...r.hashtags]) {
        assert.match(name, /^\w{1,64}$/);
      }
      for (const m of r.mentions) assert.ok(raw.includes(`@${m}`));
      for (const h of r.hashtags) assert.ok(raw.includes(`#${h}`));
      assert.equal(new Set(r.mentions).size, r.mentions.length);
      for (const l of r.links) {
        assert.ok(raw.includes(l.url), l.url);
        assert.ok(!/\s/.test(l.url) && l.url.length <= MAX_LINK_LENGTH);
        if (l.safe) assert.ok(['http:', 'https:', 'mailto:'].includes(new URL(l.url).protocol));
        if (/^\s*j\s*a\s*v\s*a\s*s\s*c\s*r\s*i\s*p\s*t\s*:/i.test(l.url)) assert.equal(l.safe, false);
      }
    }),
    { numRuns: 3000, seed: 11 },
  );
});

test('a 5000-char message of repeats yields each entity once (its cost: bench/sanitize-bench.ts)', () => {
  const s = 'hey @bob look https://example.com/page?x=1 #wow '.repeat(110).slice(0, 5000);
  assert.deepEqual(extractEntities(s), extractEntities('hey @bob look https://example.com/page?x=1 #wow '));
});
