/**
 * The waits and windows the SDK keeps for the server's budgets are the signed-in user's, because
 * the budgets are (the message budget and the request budget are counted per user, on every
 * socket and node). When the token provider switches from user A to user B on the same client
 * object, A's queue and requests fail with `user_changed`, and B must start with none of A's
 * waits: not the message-budget wait of a `rate_limited` naming A's send (up to an hour with
 * `messagesPerHour`), not the one-at-a-time window after it, not the slots A spent in the send or
 * request pacing windows, not the spacing after A's last ack. Holding B for them delays B for
 * nothing: B's own budgets are untouched. On fake sockets and a fake clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RampartClientOptions } from '../../src/client/rampart-client.js';
import { fakeClient, fakeJwt, settle } from '../helpers/fake-client-env.js';

const A = '11111111-1111-4111-8111-111111111111';
const B = '55555555-5555-4555-8555-555555555555';
const PEER = '22222222-2222-4222-8222-222222222222';
const CONV = '33333333-3333-4333-8333-333333333333';

/** A client whose token provider names `who.sub`; `acceptAs` opens the newest socket as that user. */
function switching(over: Partial<RampartClientOptions> = {}) {
  const who = { sub: A };
  const { clock, client, last } = fakeClient({ token: () => fakeJwt(2_000_000_000_000, who.sub), options: { backoff: { baseMs: 100, maxMs: 800 }, ...over } });
  const acceptAs = async (userId: string): Promise<void> => {
    await settle();
    last().open();
    last().receive({ type: 'auth_success', userId, resumeAfter: 0, lastPos: 0 });
    await settle();
  };
  /** A signs out, B signs in: the provider now hands out B's token, the connection is replaced. */
  const switchToB = async (ms = 100): Promise<void> => {
    who.sub = B;
    last().drop(1006);
    await clock.advance(ms);
    await acceptAs(B);
  };
  return { clock, client, last, who, acceptAs, switchToB };
}

const quiet = <T>(p: Promise<T>): Promise<T> => {
  p.catch(() => {});
  return p;
};

const msg = (pos: number) => ({ type: 'chat_message', pos, id: `m${pos}`, conversationId: CONV, seq: pos, senderId: PEER, content: `c${pos}`, mentions: [], hashtags: [], links: [], timestamp: 1 });

test('A hit the hourly message budget (rate_limited naming A’s send, 30 min); B signs in on the same client: B’s send goes out at once', async () => {
  const env = switching();
  void env.client.connect();
  await env.acceptAs(A);
  const byA = quiet(env.client.sendMessage({ conversationId: CONV }, 'by A', { clientMsgId: 'a1' }));
  env.last().receive({ type: 'rate_limited', reason: 'hour_limit', retryAfter: 1_800_000, clientMsgId: 'a1' });
  await settle();
  env.who.sub = B;
  env.last().drop(1006);
  await env.clock.advance(1000);
  await assert.rejects(byA, { reason: 'user_changed' });
  await env.acceptAs(B);
  quiet(env.client.sendMessage({ conversationId: CONV }, 'by B', { clientMsgId: 'b1' }));
  await settle();
  assert.deepEqual(
    env.last().framesOf('chat_message').map((f) => f.clientMsgId),
    ['b1'],
    'B’s send is held by A’s message-budget wait',
  );
  env.client.close();
});

test('after a rate_limited naming A’s send, A sent one at a time; B’s sends fill the whole in-flight window at once', async () => {
  const env = switching();
  void env.client.connect();
  await env.acceptAs(A);
  for (const id of ['a1', 'a2']) quiet(env.client.sendMessage({ conversationId: CONV }, id, { clientMsgId: id }));
  env.last().receive({ type: 'rate_limited', reason: 'burst_limit', retryAfter: 300, clientMsgId: 'a1' });
  env.last().receive({ type: 'message_sent', id: 'id-a2', clientMsgId: 'a2', conversationId: CONV, seq: 1, timestamp: 1 });
  quiet(env.client.sendMessage({ conversationId: CONV }, 'a3', { clientMsgId: 'a3' }));
  await env.clock.advance(300);
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['a1', 'a2', 'a1'], 'A: one at a time after the refusal');
  await env.switchToB(2000);
  for (const id of ['b1', 'b2', 'b3']) quiet(env.client.sendMessage({ conversationId: CONV }, id, { clientMsgId: id }));
  await settle();
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['b1', 'b2', 'b3'], 'B is not on A’s probation');
  env.client.close();
});

test('A spent the send-pacing window (5 sends at once); B signs in at once: B’s sends are not held by A’s slots', async () => {
  const env = switching();
  void env.client.connect();
  await env.acceptAs(A);
  for (let i = 0; i < 5; i++) {
    const id = `a${i}`;
    quiet(env.client.sendMessage({ conversationId: CONV }, id, { clientMsgId: id }));
    env.last().receive({ type: 'message_sent', id: `id-${id}`, clientMsgId: id, conversationId: CONV, seq: i + 1, timestamp: 1 });
  }
  assert.equal(env.last().framesOf('chat_message').length, 5);
  await env.switchToB(100);
  for (const id of ['b1', 'b2', 'b3']) quiet(env.client.sendMessage({ conversationId: CONV }, id, { clientMsgId: id }));
  await settle();
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['b1', 'b2', 'b3'], 'B’s sends wait for slots A spent');
  env.client.close();
});

test('A spent the request-pacing window (10 requests); B signs in at once: B’s request is not held by A’s slots', async () => {
  const env = switching({ maxInFlightRequests: 10 }); // all 10 on the wire at once (8 by default)
  void env.client.connect();
  await env.acceptAs(A);
  for (let i = 0; i < 10; i++) quiet(env.client.listConversations());
  assert.equal(env.last().framesOf('list_conversations').length, 10);
  await env.switchToB(100);
  quiet(env.client.listConversations());
  await settle();
  assert.equal(env.last().framesOf('list_conversations').length, 1, 'B’s first request waits for slots A spent');
  env.client.close();
});

test('A’s last ack went out just before the switch: B’s first ack (ackEvery reached) is not spaced after it', async () => {
  const env = switching({ ackEvery: 5, ackDelayMs: 250 });
  void env.client.connect();
  await env.acceptAs(A);
  for (let pos = 1; pos <= 5; pos++) env.last().receive(msg(pos));
  assert.deepEqual(env.last().framesOf('ack'), [{ type: 'ack', upTo: 5 }], 'A: ackEvery reached, acknowledged at once');
  await env.switchToB(100);
  for (let pos = 1; pos <= 5; pos++) env.last().receive(msg(pos));
  assert.deepEqual(env.last().framesOf('ack'), [{ type: 'ack', upTo: 5 }], 'B’s ack waits ackDelayMs after A’s');
  env.client.close();
});

test('the same user signing in again keeps the waits: a rate_limited naming their send still holds it', async () => {
  const env = switching();
  void env.client.connect();
  await env.acceptAs(A);
  quiet(env.client.sendMessage({ conversationId: CONV }, 'by A', { clientMsgId: 'a1' }));
  env.last().receive({ type: 'rate_limited', reason: 'hour_limit', retryAfter: 1_800_000, clientMsgId: 'a1' });
  env.last().drop(1006);
  await env.clock.advance(1000);
  await env.acceptAs(A);
  assert.deepEqual(env.last().framesOf('chat_message'), [], 'A’s own budget is still spent');
  env.client.close();
});
