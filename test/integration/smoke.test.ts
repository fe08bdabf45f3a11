import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, authedClient, closeAll, type TestServer } from '../helpers/harness.js';

let srv: TestServer;
before(async () => { srv = await startServer(); });
after(async () => { await srv.close(); });

test('a message from A reaches B and A gets message_sent', async () => {
  const a = await authedClient(srv.url);
  const b = await authedClient(srv.url);
  a.send({ type: 'chat_message', recipientId: b.userId, content: 'hello', clientMsgId: 'm1' });
  const sent = await a.nextOfType('message_sent');
  const got = await b.nextOfType('chat_message');
  assert.equal(got.id, sent.id);
  assert.equal(got.senderId, a.userId);
  assert.equal(got.content, 'hello');
  await closeAll(a, b);
});
