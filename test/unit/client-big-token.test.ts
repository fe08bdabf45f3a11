/**
 * A token over the server's pre-auth frame cap (`maxPreAuthMessageSize`, 8192): the server closes
 * with 1009 before `auth_success`, on every connection. The SDK stops for good with
 * `token_too_large` (as for the server's own `auth_failure token_too_large`, 4003) instead of
 * reconnecting forever; a 1009 on an authenticated socket still rejects the largest send in flight
 * and reconnects. On fake sockets and a fake clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyClose } from '../../src/client/refusals.js';
import { CloseCode } from '../../src/protocol/close-codes.js';
import { fakeClient, settle } from '../helpers/fake-client-env.js';

const ME = '11111111-1111-4111-8111-111111111111';
const CONV = '33333333-3333-4333-8333-333333333333';

const setup = () => fakeClient({ userId: ME, options: { backoff: { baseMs: 100, maxMs: 400 } } });

test('a 1009 close before auth_success (the auth frame over the pre-auth cap) stops the client with token_too_large', async () => {
  const env = setup();
  const ready = env.client.connect();
  const disconnected: { code: number; reason: string; retryInMs?: number }[] = [];
  const closed: { reason: string; permanent: boolean }[] = [];
  env.client.on('disconnected', (d) => disconnected.push(d));
  env.client.on('closed', (c) => closed.push(c));
  const queued = env.client.sendMessage({ conversationId: CONV }, 'hello');
  const queuedOutcome = queued.then(
    () => 'sent',
    (e: { reason?: string }) => e.reason,
  );
  await settle();
  env.last().open();
  env.last().drop(CloseCode.MESSAGE_TOO_BIG);
  await env.clock.advance(60_000);
  assert.deepEqual({ state: env.client.state, sockets: env.sockets.length }, { state: 'closed', sockets: 1 }, 'stopped, never reconnected');
  await assert.rejects(ready, { name: 'ConnectError', reason: 'token_too_large' });
  assert.equal(await queuedOutcome, 'token_too_large', 'what was queued rejects with the reason');
  assert.deepEqual(disconnected, [{ code: 1009, reason: 'token_too_large' }], 'no retryInMs: not coming back');
  assert.deepEqual(closed, [{ reason: 'token_too_large', permanent: true }]);
  assert.deepEqual(env.clock.pending, [], 'no timer left');
});

test('a 1009 close after auth_success still rejects the largest send in flight and reconnects', async () => {
  const env = setup();
  void env.client.connect();
  await settle();
  env.last().open();
  env.last().receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 });
  const small = env.client.sendMessage({ conversationId: CONV }, 'a');
  const big = env.client.sendMessage({ conversationId: CONV }, 'b'.repeat(4000));
  await settle();
  env.last().drop(CloseCode.MESSAGE_TOO_BIG);
  await assert.rejects(big, { name: 'SendError', reason: 'message_too_big' });
  await env.clock.advance(400);
  assert.equal(env.sockets.length, 2, 'reconnected');
  assert.equal(env.client.state, 'reconnecting', 'not stopped');
  env.client.close();
  await assert.rejects(small, { reason: 'closed' });
});

test('classifyClose: 1009 is token_too_large before authentication, a backoff after it', () => {
  assert.deepEqual(classifyClose({ code: 1009, renewable: true, authenticated: false }), { kind: 'permanent', reason: 'token_too_large' });
  assert.deepEqual(classifyClose({ code: 1009, renewable: false, authenticated: false }), { kind: 'permanent', reason: 'token_too_large' });
  assert.deepEqual(classifyClose({ code: 1009, renewable: true, authenticated: true }), { kind: 'backoff' });
  assert.deepEqual(classifyClose({ code: 1009, renewable: true }), { kind: 'backoff' }, 'unknown (an older caller): as before');
});
