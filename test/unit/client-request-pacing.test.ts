/**
 * The SDK keeps under the server's per-user request budget (`limits.requests`, 20 / 1000 ms):
 * acks of a fast replay are spaced by `ackDelayMs`, and the frames that spend the budget (reads,
 * `read`, presence, sessions, `ack`) are paced by a sliding window (`requestBudget`), in order,
 * while group changes (budgets of their own) are not. On fake sockets and a fake clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RampartClientOptions } from '../../src/client/rampart-client.js';
import { RequestPacer } from '../../src/client/request-pacing.js';
import { FakeClock, busiest, fakeClient, settle, timedFrames } from '../helpers/fake-client-env.js';

const ME = '11111111-1111-4111-8111-111111111111';
const PEER = '22222222-2222-4222-8222-222222222222';
const CONV = '33333333-3333-4333-8333-333333333333';

const setup = (options: Partial<RampartClientOptions> = {}) => fakeClient({ userId: ME, options });

const msg = (pos: number) => ({ type: 'chat_message', pos, id: `m${pos}`, conversationId: CONV, seq: pos, senderId: PEER, content: `c${pos}`, mentions: [], hashtags: [], links: [], timestamp: 1 });

const BUDGETED = ['history', 'list_conversations', 'read', 'presence', 'set_presence', 'list_sessions', 'end_session', 'ack'];

test('a fast replay of thousands of events is acknowledged at most once per ackDelayMs, ackEvery only making the wait shorter down to that', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept(0, 5000);
  const times = timedFrames(env.last(), env.clock);
  // 5000 events, 100 every 10 ms: ackEvery (100) is reached every 10 ms.
  for (let pos = 1; pos <= 5000; pos++) {
    env.last().receive(msg(pos));
    if (pos % 100 === 0) await env.clock.advance(10);
  }
  await env.clock.advance(1000);
  const acks = times.filter((x) => x.f.type === 'ack');
  assert.equal(acks[0]!.f.upTo, 100, 'the first ack goes at once, when ackEvery is reached');
  for (let i = 1; i < acks.length; i++) assert.ok(acks[i]!.at - acks[i - 1]!.at >= 250, `ack ${i} ${acks[i]!.at - acks[i - 1]!.at} ms after the previous one`);
  assert.ok(acks.length <= 3, `${acks.length} acks for a 500 ms replay`);
  assert.equal(acks[acks.length - 1]!.f.upTo, 5000, 'everything acknowledged in the end');
  env.client.close();
});

test('60 history() calls at once go out paced (10 per window, each slot held 1100 ms), in order, each resolving; a createGroup is not held behind them', async () => {
  const env = setup({ maxInFlightRequests: 100 }); // the pacing alone (the bound on the wire is the next test's)
  void env.client.connect();
  await env.accept();
  const times = timedFrames(env.last(), env.clock);
  const calls = Array.from({ length: 60 }, (_, i) => env.client.history({ conversationId: CONV, limit: 1 + (i % 100) }));
  await settle();
  assert.equal(env.last().framesOf('history').length, 10, 'the default budget: 10 at once');
  const created = env.client.createGroup('g', [PEER]);
  await settle();
  assert.equal(env.last().framesOf('create_group').length, 1, 'a group change spends another budget: not paced');
  // The server answers each at once.
  let answered = 0;
  const answerAll = () => {
    for (const f of env.last().framesOf('history').slice(answered)) env.last().receive({ type: 'history', conversationId: CONV, messages: [], requestId: f.requestId });
    answered = env.last().framesOf('history').length;
  };
  answerAll();
  await env.clock.advance(1099);
  assert.equal(env.last().framesOf('history').length, 10, 'no slot frees before windowMs + a tenth');
  await env.clock.advance(1);
  assert.equal(env.last().framesOf('history').length, 20);
  for (let i = 0; i < 4; i++) {
    answerAll();
    await env.clock.advance(1100);
  }
  answerAll();
  assert.equal((await Promise.all(calls)).length, 60);
  const limits = env.last().framesOf('history').map((f) => f.limit);
  assert.deepEqual(limits, Array.from({ length: 60 }, (_, i) => 1 + (i % 100)), 'in the order they were made');
  assert.ok(busiest(times.filter((x) => BUDGETED.includes(String(x.f.type))).map((x) => x.at), 1100) <= 10, 'never more than 10 in any 1100 ms');
  env.last().receive({ type: 'group_updated', conversationId: CONV, changed: true, seq: 1, requestId: env.last().framesOf('create_group')[0]!.requestId });
  await created;
  env.client.close();
});

test('at most maxInFlightRequests (8) reads are on the wire unanswered: the rest wait in order and go as answers come (slow storage cannot pile them up past the server bound); group changes are not held', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const calls = Array.from({ length: 12 }, (_, i) => env.client.history({ conversationId: CONV, limit: i + 1 }));
  const created = env.client.createGroup('g', [PEER]);
  await settle();
  // 8 on the wire (the budget would allow 10); the group change is not bounded by the server's request count.
  assert.equal(env.last().framesOf('history').length, 8);
  assert.equal(env.last().framesOf('create_group').length, 1);
  await env.clock.advance(5000);
  assert.equal(env.last().framesOf('history').length, 8, 'time alone frees no place: only answers do');
  const answer = (n: number) => {
    for (const f of env.last().framesOf('history').slice(0, n)) env.last().receive({ type: 'history', conversationId: CONV, messages: [], requestId: f.requestId });
  };
  answer(3);
  await settle();
  assert.equal(env.last().framesOf('history').length, 11, 'three answered, three more went');
  answer(11);
  await settle();
  assert.equal(env.last().framesOf('history').length, 12);
  assert.deepEqual(env.last().framesOf('history').map((f) => f.limit), Array.from({ length: 12 }, (_, i) => i + 1));
  answer(12);
  assert.equal((await Promise.all(calls)).length, 12);
  env.last().receive({ type: 'group_updated', conversationId: CONV, changed: true, seq: 1, requestId: env.last().framesOf('create_group')[0]!.requestId });
  await created;
  env.client.close();
});

test('a read answered rate_limited waits off the wire: the next one waiting for a place goes at once', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const calls = Array.from({ length: 9 }, (_, i) => env.client.history({ conversationId: CONV, limit: i + 1 }));
  await settle();
  assert.equal(env.last().framesOf('history').length, 8);
  const first = env.last().framesOf('history')[0]!;
  env.last().receive({ type: 'rate_limited', reason: 'minute_limit', retryAfter: 3000, requestId: first.requestId });
  await settle();
  assert.deepEqual(env.last().framesOf('history').map((f) => f.limit), [1, 2, 3, 4, 5, 6, 7, 8, 9], 'the 9th went while the first waits its retryAfter');
  await env.clock.advance(3000);
  assert.equal(env.last().framesOf('history').length, 9, 'its wait is over, but 8 are on the wire: it waits for a place');
  for (const f of env.last().framesOf('history').slice(1)) env.last().receive({ type: 'history', conversationId: CONV, messages: [], requestId: f.requestId });
  await settle();
  const all = env.last().framesOf('history');
  assert.equal(all.length, 10, 'then it goes again');
  env.last().receive({ type: 'history', conversationId: CONV, messages: [], requestId: all[9]!.requestId });
  assert.equal((await Promise.all(calls)).length, 9);
  env.client.close();
});

test('a request waiting for the budget still times out at requestTimeoutMs; requestBudget sets the pace', async () => {
  const env = setup({ requestBudget: { limit: 1, windowMs: 1000 }, requestTimeoutMs: 500 });
  void env.client.connect();
  await env.accept();
  const first = env.client.listSessions();
  const second = env.client.getPresence(CONV);
  const outcome = second.then(
    () => 'resolved',
    (e: { reason?: string }) => e.reason,
  );
  void first.catch(() => {});
  await settle();
  assert.equal(env.last().framesOf('list_sessions').length, 1);
  assert.equal(env.last().framesOf('presence').length, 0, 'one per window');
  await env.clock.advance(500);
  assert.equal(await outcome, 'timeout');
  await env.clock.advance(2000);
  assert.equal(env.last().framesOf('presence').length, 0, 'a request that timed out never goes out');
  env.client.close();
});

test('an ack held by the pacing takes the next free slot, before the requests waiting', async () => {
  const env = setup({ requestBudget: { limit: 2, windowMs: 1000 }, ackDelayMs: 100 });
  void env.client.connect();
  await env.accept(0, 1);
  const reads = [env.client.history({ conversationId: CONV }), env.client.history({ conversationId: CONV }), env.client.history({ conversationId: CONV })];
  for (const r of reads) void r.catch(() => {});
  await settle();
  env.last().receive(msg(1));
  await env.clock.advance(100);
  assert.deepEqual(env.last().sent.slice(1).map((f) => f.type), ['history', 'history'], 'the ack waits for a slot');
  await env.clock.advance(1000);
  assert.deepEqual(env.last().sent.slice(1).map((f) => f.type), ['history', 'history', 'ack', 'history']);
  env.client.close();
});

test('the pacer: at most `limit` per window plus a tenth; a clock stepped back holds no slot longer than that', async () => {
  const clock = new FakeClock();
  const pacer = new RequestPacer(clock, { limit: 3, windowMs: 1000 });
  for (let i = 0; i < 3; i++) {
    assert.equal(pacer.wait(), 0);
    pacer.spend();
  }
  assert.equal(pacer.wait(), 1100);
  await clock.advance(600);
  assert.equal(pacer.wait(), 500);
  await clock.advance(500);
  assert.equal(pacer.wait(), 0);
  let t = 1_000_000;
  const stepped = new RequestPacer({ now: () => t, setTimeout: () => 0, clearTimeout: () => {} }, { limit: 1, windowMs: 1000 });
  stepped.spend();
  t -= 10_000; // stepped back
  assert.equal(stepped.wait(), 0, 'a slot from the future beyond one hold is not counted');
  // A smaller step back (an NTP correction) holds a frame no longer than one hold either, also
  // when frames were sent on both sides of the step.
  const twice = new RequestPacer({ now: () => t, setTimeout: () => 0, clearTimeout: () => {} }, { limit: 2, windowMs: 1000 });
  twice.spend();
  twice.spend();
  t -= 500;
  assert.equal(twice.wait(), 1100);
  const across = new RequestPacer({ now: () => t, setTimeout: () => 0, clearTimeout: () => {} }, { limit: 2, windowMs: 1000 });
  across.spend();
  t -= 1000;
  across.spend();
  assert.ok(across.wait() <= 1100, String(across.wait()));
});

test('a read the server refused with rate_limited (naming it) goes again after retryAfter and resolves; a change is not repeated', async () => {
  const env = setup();
  void env.client.connect();
  await env.accept();
  const page = env.client.history({ peerId: PEER, limit: 1 });
  const change = env.client.setPresenceVisible(false);
  await settle();
  const [h, p] = [env.last().framesOf('history')[0]!, env.last().framesOf('set_presence')[0]!];
  // Paced requests can still arrive bunched (a stall on the way): the server refuses both.
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 300, requestId: h.requestId });
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 300, requestId: p.requestId });
  await assert.rejects(change, { reason: 'rate_limited', retryAfter: 300 });
  await env.clock.advance(299);
  assert.equal(env.last().framesOf('history').length, 1, 'not before the wait');
  await env.clock.advance(1);
  await settle();
  const again = env.last().framesOf('history');
  assert.deepEqual(again.map((f) => f.requestId), [h.requestId, h.requestId], 'the same request again');
  env.last().receive({ type: 'history', messages: [], requestId: h.requestId });
  assert.deepEqual((await page).messages, []);
  assert.equal(env.last().framesOf('set_presence').length, 1);
  env.client.close();
});
