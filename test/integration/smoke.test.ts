import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, authedClient, closeAll, type TestServer } from '../helpers/harness.js';

let srv: TestServer;
before(async () => { srv = await startServer(); });
after(async () => { await srv.close(); });

test('a message from A reaches B and A gets message_sent (protocol v2: conversationId, seq, pos)', { timeout: 10_000 }, async () => {
  const a = await authedClient(srv.url);
  const b = await authedClient(srv.url);
  assert.deepEqual(a.frames[0], { type: 'auth_success', userId: a.userId, resumeAfter: 0, lastPos: 0 });
  a.send({ type: 'chat_message', recipientId: b.userId, content: 'hello', clientMsgId: 'm1' });
  const sent = await a.nextOfType('message_sent');
  const got = await b.nextOfType('chat_message');
  assert.equal(got.id, sent.id);
  assert.equal(got.senderId, a.userId);
  assert.equal(got.content, 'hello');
  assert.equal(got.conversationId, sent.conversationId);
  assert.deepEqual([sent.seq, sent.pos, got.seq, got.pos], [1, 1, 1, 1]);
  b.send({ type: 'ack', upTo: got.pos });
  b.send({ type: 'chat_message', recipientId: a.userId, content: 'hi back', clientMsgId: 'm2' });
  const back = await b.next((f) => f.clientMsgId === 'm2');
  const reply = await a.nextOfType('chat_message');
  assert.deepEqual([back.seq, back.pos, reply.id, reply.pos], [2, 2, back.id, 2]);
  assert.equal(reply.recipientId, a.userId);
  assert.deepEqual(b.frames.filter((f) => f.type === 'error'), []);
  await closeAll(a, b);
});
