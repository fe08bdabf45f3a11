/** Every text bound counts Unicode code points, as the schemas do (protocol.md §3): an emoji is one character. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { processContent, sanitizeDisplayName } from '../../src/chat/process-content.js';
import { ClientFrame } from '../../src/protocol/client-frames.js';
import { validateFrame } from '../../src/pipeline/validate-frame.js';
import { extractEntities } from '../../src/chat/extract.js';


const CONV = '0190a5a4-3c3b-7b8e-9a1e-2f3c4d5e6f70';
const EMOJI = '\u{1F600}'; // one code point, two UTF-16 units

// protocol.md §3: content 1..5000 characters, "Unicode code points, so an emoji is one — every
// length bound on text in this table counts the same way".
test('content of 3000 emoji (3000 code points) is accepted by schema AND content processing', () => {
  const content = EMOJI.repeat(3000);
  const v = validateFrame({ type: 'chat_message', conversationId: CONV, content });
  assert.equal(v.ok, true, 'schema accepts 3000 code points');
  const r = processContent(content, 'standard');
  assert.equal(r.ok, true, `processContent refused: ${JSON.stringify(!r.ok && r)}`);
});

test('edit_message content of 3000 emoji is accepted too', () => {
  const content = EMOJI.repeat(3000);
  assert.equal(ClientFrame.safeParse({ type: 'edit_message', messageId: CONV, content }).success, true);
  const r = processContent(content, 'standard');
  assert.equal(r.ok, true, `processContent refused: ${JSON.stringify(!r.ok && r)}`);
});

test('attachment name of 200 emoji (200 code points, bound 255) is accepted', () => {
  const name = EMOJI.repeat(200);
  const frame = { type: 'chat_message', conversationId: CONV, content: 'x', attachments: [{ type: 'file', url: 'https://a.example/f', name }] };
  assert.equal(ClientFrame.safeParse(frame).success, true, 'schema accepts');
  const r = sanitizeDisplayName(name);
  assert.equal(r.ok, true, `sanitizeDisplayName refused: ${JSON.stringify(!r.ok && r)}`);
});

// §4: "at most 20 links of at most 2048 characters" with §3's "characters: Unicode code points".
test('a link of 1100 code points (2200 UTF-16 units) is reported', () => {
  const link = `https://x.example/${'\u{1F600}'.repeat(1100)}`;
  assert.ok([...link].length <= 2048);
  const { links } = extractEntities(`see ${link}`);
  assert.equal(links.length, 1);
});
