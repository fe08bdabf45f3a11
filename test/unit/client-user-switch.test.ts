/**
 * A token provider that switches users: what was made as the last connection's user fails with
 * `user_changed`, once; what the app does as the new user afterwards goes out as them — also when
 * the new user's first attempt fails before auth_success. A keyed create refused rate_limited by
 * both copies on the wire waits for the later wait, and no held timer outlives close().
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RampartClient, type RampartClientOptions } from '../../src/client/rampart-client.js';
import { FakeClock, FakeSocket, fakeJwt, settle } from '../helpers/fake-client-env.js';

const ME = '11111111-1111-4111-8111-111111111111';
const PEER = '22222222-2222-4222-8222-222222222222';
const OTHER = '55555555-5555-4555-8555-555555555555';
const CONV = '33333333-3333-4333-8333-333333333333';

function setup(over: Partial<RampartClientOptions> = {}) {
  const clock = new FakeClock();
  const sockets: FakeSocket[] = [];
  const client = new RampartClient({
    url: 'ws://rampart.test/ws',
    token: () => fakeJwt(clock.now() + 3_600_000, ME),
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    clock,
    random: () => 0.5,
    backoff: { baseMs: 1000, maxMs: 8000 },
    pingIntervalMs: 0,
    ...over,
  });
  const last = () => sockets[sockets.length - 1]!;
  return { clock, sockets, client, last };
}

function switchingSetup() {
  const who = { sub: ME };
  const token = (): string => {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    return `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub: who.sub, exp: 2_000_000_000 })}.sig`;
  };
  const env = setup({ token });
  const acceptAs = async (userId: string): Promise<void> => {
    await settle();
    env.last().open();
    env.last().receive({ type: 'auth_success', userId, resumeAfter: 0, lastPos: 0 });
    await settle();
  };
  return { ...env, who, acceptAs };
}

function early<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

test('a keyed create on the wire twice (repeat after a dropped frame), both copies answered rate_limited: it does not go again before the later wait is over', async () => {
  const env = setup();
  void env.client.connect();
  await settle();
  env.last().open();
  env.last().receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 });
  await settle();
  const created = early(env.client.createGroup('team', [PEER], { clientMsgId: 'k1' }));
  const first = env.last().framesOf('create_group');
  assert.equal(first.length, 1);
  const requestId = first[0]!.requestId;
  // The server dropped a frame unread (not naming it): the create goes again after the wait.
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 100 });
  await env.clock.advance(100);
  assert.equal(env.last().framesOf('create_group').length, 2, 'repeated under its key');
  // Both copies refused by the group-create limit, with different waits.
  env.last().receive({ type: 'rate_limited', reason: 'group_create_limit', retryAfter: 1000, requestId, clientMsgId: 'k1' });
  env.last().receive({ type: 'rate_limited', reason: 'group_create_limit', retryAfter: 5000, requestId, clientMsgId: 'k1' });
  await env.clock.advance(1000);
  assert.equal(env.last().framesOf('create_group').length, 2, 'not sent again before the later wait is over (it would only be refused again)');
  env.client.close();
  await assert.rejects(created, { reason: 'closed' });
});

test('a keyed create answered rate_limited twice (original and repeat), then close(): no held timer survives close()', async () => {
  const env = setup();
  void env.client.connect();
  await settle();
  env.last().open();
  env.last().receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 });
  await settle();
  const created = early(env.client.createGroup('team', [PEER], { clientMsgId: 'k1' }));
  const requestId = env.last().framesOf('create_group')[0]!.requestId;
  env.last().receive({ type: 'rate_limited', reason: 'frame_limit', retryAfter: 100 });
  await env.clock.advance(100);
  assert.equal(env.last().framesOf('create_group').length, 2);
  env.last().receive({ type: 'rate_limited', reason: 'group_create_limit', retryAfter: 1000, requestId, clientMsgId: 'k1' });
  env.last().receive({ type: 'rate_limited', reason: 'group_create_limit', retryAfter: 5000, requestId, clientMsgId: 'k1' });
  env.client.close();
  await assert.rejects(created, { reason: 'closed' });
  assert.deepEqual(env.clock.pending, [], 'no timer left after close()');
});

test('a send made after the client switched to user B (A’s work already failed with user_changed) goes out as B, it is not failed at B’s auth_success', async () => {
  const env = switchingSetup();
  void env.client.connect();
  await env.acceptAs(ME);
  const byA = early(env.client.sendMessage({ conversationId: CONV }, 'by A', { clientMsgId: 'a1' }));
  env.last().drop(1006);
  env.who.sub = OTHER;
  await env.clock.advance(1000); // B's token read: A's send fails at once
  await assert.rejects(byA, { reason: 'user_changed' });
  // The app, told so, sends as B (e.g. in its catch handler) before B's connection is up.
  const byB = early(env.client.sendMessage({ conversationId: CONV }, 'by B', { clientMsgId: 'b1' }));
  await env.acceptAs(OTHER);
  await assert.doesNotReject(Promise.race([byB, new Promise((r) => setImmediate(r))]), 'B’s send is not failed');
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['b1'], 'B’s send goes out on B’s connection');
  env.last().receive({ type: 'message_sent', id: 'ib', clientMsgId: 'b1', conversationId: CONV, seq: 1, timestamp: 1, pos: 1 });
  assert.equal((await byB).id, 'ib');
  env.client.close();
});

test('a send made as B while B’s first connection attempt failed before auth_success is not failed with user_changed at the next attempt', async () => {
  const env = switchingSetup();
  void env.client.connect();
  await env.acceptAs(ME);
  env.last().drop(1006);
  env.who.sub = OTHER;
  await env.clock.advance(1000); // B's token read (user change seen); socket 2 opening
  await settle();
  const byB = early(env.client.sendMessage({ conversationId: CONV }, 'by B', { clientMsgId: 'b1' }));
  let retryIn = -1;
  env.client.on('disconnected', (d) => (retryIn = d.retryInMs ?? -1));
  env.last().drop(1006); // fails before auth_success
  await env.clock.advance(retryIn);
  await env.acceptAs(OTHER);
  await assert.doesNotReject(Promise.race([byB, new Promise((r) => setImmediate(r))]), 'B’s send is not failed');
  assert.deepEqual(env.last().framesOf('chat_message').map((f) => f.clientMsgId), ['b1']);
  env.last().receive({ type: 'message_sent', id: 'ib', clientMsgId: 'b1', conversationId: CONV, seq: 1, timestamp: 1, pos: 1 });
  assert.equal((await byB).id, 'ib');
  env.client.close();
});
