/**
 * What users write, end to end: lengths count characters as code points everywhere (an emoji is
 * one), an attachment URL never comes back with a raw quote, and a frame holding a `__proto__`,
 * `constructor` or `prototype` key is refused as any unknown key is.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, authedClient, closeAll, type TestServer, type Frame } from '../helpers/harness.js';

let srv: TestServer;
before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv.close();
});

// protocol.md §3: content 1..5000 characters, "Unicode code points, so an emoji is one".
test('wire: a chat_message of 3000 emoji (3000 code points) is sent, not refused invalid_content', async () => {
  const a = await authedClient(srv.url);
  const b = await authedClient(srv.url);
  a.send({ type: 'chat_message', recipientId: b.userId, content: '\u{1F600}'.repeat(3000), clientMsgId: 'emoji3000' });
  const answer = await a.next((f) => f.clientMsgId === 'emoji3000');
  assert.equal(answer.type, 'message_sent', `got ${JSON.stringify(answer)}`);
  await closeAll(a, b);
});

// §3: attachment url stored "with ' and backquote also encoded — no \" ' < >, backquote or space left raw".
test('wire: an attachment URL never reaches the recipient (live or history) with a raw "', async () => {
  const a = await authedClient(srv.url);
  const b = await authedClient(srv.url);
  const url = 'https://x"onmouseover="alert(1).example/';
  a.send({ type: 'chat_message', recipientId: b.userId, content: 'pic', attachments: [{ type: 'image', url, name: 'a.png' }], clientMsgId: 'att1' });
  const answer = await a.next((f) => f.clientMsgId === 'att1');
  assert.equal(answer.type, 'message_sent', JSON.stringify(answer));
  {
    const live = await b.nextOfType('chat_message');
    const liveUrl = (live.attachments as { url: string }[])[0]!.url;
    b.send({ type: 'history', peerId: a.userId, requestId: 'h1' });
    const hist = await b.next((f) => f.type === 'history' && f.requestId === 'h1');
    const histUrl = ((hist.messages as Frame[])[0]!.attachments as { url: string }[])[0]!.url;
    assert.ok(!liveUrl.includes('"'), `live frame carries raw quote: ${liveUrl}`);
    assert.ok(!histUrl.includes('"'), `history carries raw quote: ${histUrl}`);
  }
  await closeAll(a, b);
});

test('wire: a frame holding a __proto__, constructor or prototype key is refused as an unknown key, naming no key', async () => {
  const a = await authedClient(srv.url);
  const b = await authedClient(srv.url);
  for (const key of ['__proto__', 'constructor', 'prototype']) {
    a.send(`{"type":"chat_message","recipientId":"${b.userId}","content":"x","clientMsgId":"k-${key}","${key}":{"a":1}}`);
    const refusal = await a.next((f) => f.type === 'error', true);
    assert.deepEqual(refusal, { type: 'error', reason: 'validation_failed', details: [{ path: '', rule: 'unrecognized_keys' }] });
  }
  await closeAll(a, b);
});
