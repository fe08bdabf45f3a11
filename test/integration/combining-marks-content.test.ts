/**
 * protocol.md §4: more than MAX_COMBINING_MARKS combining marks in a row ("Zalgo" text, which
 * stacks over the messages above and below it) are refused `invalid_content`, in content, edits,
 * group names and attachment names; nothing is stored or delivered, and the same text with a
 * handful of marks per letter goes through.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_COMBINING_MARKS } from '../../src/protocol/bounds.js';
import { startServer, authedClient, closeAll, type TestServer } from '../helpers/harness.js';

let srv: TestServer;
before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv.close();
});

const zalgo = (marks: number): string => `he${'\u0336\u0358\u0315\u0307'.repeat(Math.ceil(marks / 4)).slice(0, marks)}llo`;

test('content, edits, group names and attachment names with too many marks in a row are refused invalid_content', async () => {
  const a = await authedClient(srv.url);
  const b = await authedClient(srv.url);
  try {
    const tooMany = zalgo(MAX_COMBINING_MARKS + 1);
    a.send({ type: 'chat_message', recipientId: b.userId, content: tooMany, clientMsgId: 'z1' });
    const refused = await a.next((f) => f.clientMsgId === 'z1');
    assert.deepEqual([refused.type, refused.reason], ['error', 'invalid_content'], JSON.stringify(refused));
    assert.ok(!JSON.stringify(refused).includes('llo'), 'the reply does not echo the content');

    a.send({
      type: 'chat_message',
      recipientId: b.userId,
      content: 'see attached',
      attachments: [{ type: 'file', url: 'https://files.example/x', name: tooMany }],
      clientMsgId: 'z2',
    });
    assert.equal((await a.next((f) => f.clientMsgId === 'z2')).reason, 'invalid_content');

    a.send({ type: 'create_group', name: tooMany, memberIds: [], requestId: 'g1' });
    assert.equal((await a.next((f) => f.requestId === 'g1')).reason, 'invalid_content');

    // At the bound it goes through, and the recipient gets only that one.
    a.send({ type: 'chat_message', recipientId: b.userId, content: zalgo(MAX_COMBINING_MARKS), clientMsgId: 'ok' });
    const sent = await a.next((f) => f.clientMsgId === 'ok');
    assert.equal(sent.type, 'message_sent', JSON.stringify(sent));
    const delivered = await b.next((f) => f.type === 'chat_message');
    assert.equal(delivered.id, sent.id);

    a.send({ type: 'edit_message', messageId: sent.id, content: tooMany, requestId: 'e1' });
    assert.equal((await a.next((f) => f.requestId === 'e1')).reason, 'invalid_content');
  } finally {
    await closeAll(a, b);
  }
});
