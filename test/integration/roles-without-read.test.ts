/**
 * protocol.md §5, deny by default: a session is a reader — it is sent its user's timeline, stored
 * and live — so a role without `read` (one not configured in `chat.roles` included) is refused at
 * `auth` (`auth_failure invalid_token`, 4003) and on a refresh into such a role. Before, such a
 * session was refused `history` for the very messages it was pushed, and, unable to `ack`, let the
 * user's backlog fill up to `inbox_full` for everyone writing to them.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, authedClient, openClient, token, newUserId, closeAll, waitFor, type TestServer } from '../helpers/harness.js';

let srv: TestServer;
before(async () => {
  srv = await startServer({ chat: { roles: { user: { send: true, read: true, createGroup: true }, poster: { send: true, read: false } } } });
});
after(async () => {
  await srv.close();
});

for (const role of ['ghost', 'poster']) {
  test(`a token whose role may not read (${role === 'ghost' ? 'not configured' : 'configured without read'}) is refused at auth, and is sent nothing`, async () => {
    const alice = await authedClient(srv.url);
    const userId = newUserId();
    try {
      alice.send({ type: 'chat_message', recipientId: userId, content: 'stored while offline', clientMsgId: 'c1' });
      assert.equal((await alice.next((f) => f.clientMsgId === 'c1')).type, 'message_sent');
      const client = openClient(srv.url);
      await client.opened;
      client.send({ type: 'auth', token: await token({ sub: userId, role }) });
      const answer = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
      assert.deepEqual(answer, { type: 'auth_failure', reason: 'invalid_token' });
      assert.equal((await client.closed).code, 4003);
      assert.deepEqual(client.frames, [{ type: 'auth_failure', reason: 'invalid_token' }]);
      await waitFor(() => srv.logs.some((l) => l.includes('"role_without_read"')), 5000, 'the security line');
    } finally {
      await closeAll(alice);
    }
  });
}

test('a refresh into a role that may not read closes the session 4003', async () => {
  const userId = newUserId();
  const client = await authedClient(srv.url, userId);
  try {
    client.send({ type: 'auth', token: await token({ sub: userId, role: 'poster' }) });
    const answer = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure', true);
    assert.deepEqual(answer, { type: 'auth_failure', reason: 'invalid_token' });
    assert.equal((await client.closed).code, 4003);
    assert.deepEqual(client.frames.at(-1), { type: 'auth_failure', reason: 'invalid_token' });
  } finally {
    await closeAll(client);
  }
});
