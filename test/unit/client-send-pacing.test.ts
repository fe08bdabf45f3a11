/**
 * What the SDK does so that its own sending never collects strikes against the server's message
 * budget (`rateLimit.burstLimit` 10 per `burstWindow` 1000 ms per user by default; every refusal
 * is a strike, 20 in 10 s close the connection with 4029 and lock the user out for a minute):
 * - sends, edits and deletes — resends included — go out at most `sendBudget.limit` per
 *   `sendBudget.windowMs` (default 5 per 1000 ms, each slot held a tenth longer, as the server's
 *   bucketed windows may count it), the rest waiting in order;
 * - after a `rate_limited` that names a send, once `retryAfter` is over, one send at a time goes out
 *   until a send made since is confirmed: only then is the whole `maxInFlightSends` window refilled.
 * Order and the `clientMsgId` dedupe hold throughout: nothing confirmed is sent again, nothing
 * queued is lost. On fake sockets and a fake clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RampartClientOptions } from '../../src/client/rampart-client.js';
import { busiest, fakeClient, timedFrames, type FakeClock, type FakeSocket, type TimedFrame } from '../helpers/fake-client-env.js';

const ME = '11111111-1111-4111-8111-111111111111';
const CONV = '33333333-3333-4333-8333-333333333333';
const M1 = '44444444-4444-4444-8444-444444444441';
const M2 = '44444444-4444-4444-8444-444444444442';

const setup = (options: Partial<RampartClientOptions> = {}) => fakeClient({ userId: ME, options });

const quiet = <T>(p: Promise<T>): Promise<T> => {
  p.catch(() => {});
  return p;
};

const SENDS = ['chat_message', 'edit_message', 'delete_message'];

/** Every send, edit and delete a socket puts on the wire from now on, with the clock time it went out. */
const timedSends = (socket: FakeSocket, clock: FakeClock): TimedFrame[] => timedFrames(socket, clock, (f) => SENDS.includes(String(f.type)));
const idsOf = (out: TimedFrame[]): string[] => out.map((o) => String(o.f.clientMsgId));

const sentIds = (s: FakeSocket): string[] => s.sent.filter((f) => SENDS.includes(String(f.type))).map((f) => String(f.clientMsgId));

const confirm = (s: FakeSocket, id: string, seq: number) => s.receive({ type: 'message_sent', id: `id-${id}`, clientMsgId: id, conversationId: CONV, seq, timestamp: 1 });

test('30 sends at once, answered at once: at most 5 in any 1100 ms, in the order made, each confirmed once', async () => {
  const env = setup({ maxInFlightSends: 100 });
  void env.client.connect();
  await env.accept();
  const out = timedSends(env.last(), env.clock);
  const ids = Array.from({ length: 30 }, (_, i) => `c${i}`);
  const sends = ids.map((id) => env.client.sendMessage({ conversationId: CONV }, id, { clientMsgId: id }));
  // The server answers each send as it arrives.
  let seq = 0;
  const answer = () => {
    for (const f of env.last().framesOf('chat_message').slice(seq)) confirm(env.last(), String(f.clientMsgId), ++seq);
  };
  answer();
  assert.equal(out.length, 5, 'the first 5 at once; the window is full');
  await env.clock.advance(1099);
  answer();
  assert.equal(out.length, 5, 'a slot is held 1100 ms (the server may count a frame a tenth of its window longer)');
  for (let t = 0; t < 70 && out.length < 30; t++) {
    await env.clock.advance(100);
    answer();
  }
  assert.deepEqual(
    idsOf(out),
    ids,
    'all of them, in order, once',
  );
  assert.ok(busiest(out.map((o) => o.at), 1100) <= 5, `at most 5 in any 1100 ms: ${busiest(out.map((o) => o.at), 1100)}`);
  assert.deepEqual((await Promise.all(sends)).map((r) => r.seq), Array.from({ length: 30 }, (_, i) => i + 1));
  env.client.close();
});

test('edits and deletes spend the same window as messages; sendBudget sets it', async () => {
  const env = setup({ maxInFlightSends: 100, sendBudget: { limit: 3, windowMs: 500 } });
  void env.client.connect();
  await env.accept();
  const out = timedSends(env.last(), env.clock);
  quiet(env.client.sendMessage({ conversationId: CONV }, 'a', { clientMsgId: 'a' }));
  quiet(env.client.editMessage(M1, 'e', { clientMsgId: 'e' }));
  quiet(env.client.deleteMessage(M2, { clientMsgId: 'd' }));
  quiet(env.client.sendMessage({ conversationId: CONV }, 'b', { clientMsgId: 'b' }));
  quiet(env.client.editMessage(M1, 'f', { clientMsgId: 'f' }));
  assert.deepEqual(idsOf(out), ['a', 'e', 'd']);
  await env.clock.advance(549);
  assert.equal(out.length, 3, 'held 550 ms (500 and a tenth)');
  await env.clock.advance(1);
  assert.deepEqual(idsOf(out), ['a', 'e', 'd', 'b', 'f']);
  env.client.close();
});

test('resends spend the window too: after a reconnect the sends still unconfirmed go again under the budget, in order, under their clientMsgId', async () => {
  const env = setup({ maxInFlightSends: 100, backoff: { baseMs: 100, maxMs: 100 } });
  void env.client.connect();
  await env.accept();
  const ids = Array.from({ length: 10 }, (_, i) => `r${i}`);
  for (const id of ids) quiet(env.client.sendMessage({ conversationId: CONV }, id, { clientMsgId: id }));
  assert.equal(env.last().framesOf('chat_message').length, 5);
  env.last().drop(1006);
  await env.clock.advance(100);
  await env.accept();
  assert.deepEqual(sentIds(env.last()), [], 'the 5 slots spent on the first socket are still held (the budget is the user’s, not the socket’s)');
  await env.clock.advance(1000);
  assert.deepEqual(sentIds(env.last()), ids.slice(0, 5), 'again, oldest first, as the slots free');
  await env.clock.advance(1100);
  assert.deepEqual(sentIds(env.last()), ids, 'then the five never sent');
  env.client.close();
});

test('rate_limited naming a send: after retryAfter one send at a time, until one sent since is confirmed; then the whole window again', async () => {
  const env = setup({ sendBudget: { limit: 8 } }); // the in-flight window (8) is what is refilled
  void env.client.connect();
  await env.accept();
  const ids = Array.from({ length: 12 }, (_, i) => `s${i}`);
  const sends = ids.map((id) => env.client.sendMessage({ conversationId: CONV }, id, { clientMsgId: id }));
  for (const p of sends) quiet(p);
  assert.deepEqual(sentIds(env.last()), ids.slice(0, 8));
  // The user's budget was spent elsewhere too: s0 and s1 pass, s2 … s7 are refused.
  confirm(env.last(), 's0', 1);
  confirm(env.last(), 's1', 2);
  for (const id of ids.slice(2, 8)) env.last().receive({ type: 'rate_limited', reason: 'burst_limit', retryAfter: 1500, clientMsgId: id });
  assert.deepEqual(sentIds(env.last()), ids.slice(0, 8), 'nothing before the wait is over');
  await env.clock.advance(1499);
  assert.equal(sentIds(env.last()).length, 8);
  await env.clock.advance(1);
  assert.deepEqual(sentIds(env.last()).slice(8), ['s2'], 'the oldest refused one, alone');
  await env.clock.advance(5000);
  assert.deepEqual(sentIds(env.last()).slice(8), ['s2'], 'nothing more while it is unanswered');
  // Refused again: the wait, then still one at a time.
  env.last().receive({ type: 'rate_limited', reason: 'burst_limit', retryAfter: 800, clientMsgId: 's2' });
  await env.clock.advance(800);
  assert.deepEqual(sentIds(env.last()).slice(8), ['s2', 's2']);
  confirm(env.last(), 's2', 3);
  assert.deepEqual(sentIds(env.last()).slice(8), ['s2', 's2', 's3', 's4', 's5', 's6', 's7', 's8', 's9'], 'confirmed: the whole window again, as far as the send budget has slots (s2’s resend spent one)');
  await env.clock.advance(1099);
  assert.equal(sentIds(env.last()).length, 17);
  await env.clock.advance(1);
  assert.deepEqual(sentIds(env.last()).slice(17), ['s10'], '8 in flight');
  for (const [i, id] of ids.slice(3, 11).entries()) confirm(env.last(), id, 4 + i);
  assert.deepEqual(sentIds(env.last()).slice(17), ['s10', 's11']);
  confirm(env.last(), 's11', 12);
  assert.deepEqual((await Promise.all(sends)).map((r) => r.clientMsgId), ids, 'every send resolved, once');
  env.client.close();
});

test('after rate_limited, a confirmation of a send that went out before the refusal does not reopen the window', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const ids = ['a', 'b', 'c', 'd'];
  for (const id of ids) quiet(env.client.sendMessage({ conversationId: CONV }, id, { clientMsgId: id }));
  env.last().receive({ type: 'rate_limited', reason: 'burst_limit', retryAfter: 2000, clientMsgId: 'a' });
  confirm(env.last(), 'b', 1); // on the wire before the refusal, admitted after it
  await env.clock.advance(2000);
  assert.deepEqual(sentIds(env.last()).slice(4), [], 'c and d are still in flight: the one-at-a-time window is full');
  confirm(env.last(), 'c', 2);
  confirm(env.last(), 'd', 3);
  assert.deepEqual(sentIds(env.last()).slice(4), ['a'], 'then a alone');
  quiet(env.client.sendMessage({ conversationId: CONV }, 'e', { clientMsgId: 'e' }));
  assert.deepEqual(sentIds(env.last()).slice(4), ['a'], 'e waits for a’s answer');
  confirm(env.last(), 'a', 4);
  assert.deepEqual(sentIds(env.last()).slice(4), ['a', 'e']);
  env.client.close();
});

test('the one-at-a-time window outlasts a reconnect (the budget is the user’s): the next socket sends one, and the rest once it is confirmed', async () => {
  const env = setup({ backoff: { baseMs: 100, maxMs: 100 } });
  void env.client.connect();
  await env.accept();
  for (const id of ['a', 'b', 'c']) quiet(env.client.sendMessage({ conversationId: CONV }, id, { clientMsgId: id }));
  env.last().receive({ type: 'rate_limited', reason: 'minute_limit', retryAfter: 3000, clientMsgId: 'a' });
  env.last().drop(1006);
  await env.clock.advance(100);
  await env.accept();
  assert.deepEqual(sentIds(env.last()), [], 'the message budget’s wait goes on across the reconnect');
  await env.clock.advance(3000);
  assert.deepEqual(sentIds(env.last()), ['a']);
  confirm(env.last(), 'a', 1);
  assert.deepEqual(sentIds(env.last()), ['a', 'b', 'c']);
  env.client.close();
});
