/**
 * protocol.md §4: content that is blank after sanitizing is refused `invalid_content`, and blank
 * means whitespace or invisible characters only. Content, an edit or a group name made only of
 * zero-width characters, fillers or tag characters renders as nothing at all (an empty bubble, a
 * blank group title, blank spam); before, the server accepted, stored and delivered it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, authedClient, closeAll, type TestServer } from '../helpers/harness.js';

let srv: TestServer;
before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv.close();
});

// ZWSP, ZWNJ, ZWJ, WORD JOINER, BRAILLE BLANK, HANGUL FILLER, MONGOLIAN VOWEL SEPARATOR, TAG SPACE
const INVISIBLE = ['\u200B', '\u200C\u200D\u2060', '\u2800', '\u3164', '\u180E', '\u{E0020}', '<b>\u200B</b>'];

test('chat_message whose content is only invisible characters is refused invalid_content', async () => {
  const a = await authedClient(srv.url);
  const b = await authedClient(srv.url);
  try {
    for (const [i, content] of INVISIBLE.entries()) {
      a.send({ type: 'chat_message', recipientId: b.userId, content, clientMsgId: `inv-${i}` });
      const answer = await a.next((f) => f.clientMsgId === `inv-${i}`);
      assert.deepEqual([answer.type, answer.reason], ['error', 'invalid_content'], `content ${JSON.stringify(content)} was answered ${JSON.stringify(answer)}`);
    }
  } finally {
    await closeAll(a, b);
  }
});

test('edit_message replacing a message by invisible-only content is refused invalid_content', async () => {
  const a = await authedClient(srv.url);
  const b = await authedClient(srv.url);
  try {
    a.send({ type: 'chat_message', recipientId: b.userId, content: 'visible', clientMsgId: 'orig' });
    const sent = await a.next((f) => f.clientMsgId === 'orig');
    assert.equal(sent.type, 'message_sent');
    a.send({ type: 'edit_message', messageId: sent.id, content: '\u200B\u2060', requestId: 'e1' });
    const answer = await a.next((f) => f.requestId === 'e1');
    assert.deepEqual([answer.type, answer.reason], ['error', 'invalid_content'], JSON.stringify(answer));
  } finally {
    await closeAll(a, b);
  }
});

test('create_group with an invisible-only name is refused invalid_content', async () => {
  const a = await authedClient(srv.url);
  try {
    a.send({ type: 'create_group', name: '\u3164\u200B', memberIds: [], requestId: 'g1' });
    const answer = await a.next((f) => f.requestId === 'g1');
    assert.deepEqual([answer.type, answer.reason], ['error', 'invalid_content'], JSON.stringify(answer));
  } finally {
    await closeAll(a);
  }
});
