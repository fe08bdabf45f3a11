/**
 * The same user under different spellings of their token (no `tid`, then `tid: "default"`; an
 * upper-case `sub`) is the server's same user: nothing fails with user_changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RampartClient } from '../../src/client/rampart-client.js';
import { FakeClock, FakeSocket, settle } from '../helpers/fake-client-env.js';

const ME = '11111111-1111-4111-8111-111111111111';
const CONV = '33333333-3333-4333-8333-333333333333';

test('sanity: same user, token without tid then with tid "default" and upper-case sub: nothing fails with user_changed, the send goes out', async () => {
  const clock = new FakeClock();
  const sockets: FakeSocket[] = [];
  const who = { sub: ME, tid: undefined as string | undefined };
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const client = new RampartClient({
    url: 'ws://rampart.test/ws',
    token: () => `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub: who.sub, exp: 2_000_000_000, ...(who.tid !== undefined ? { tid: who.tid } : {}) })}.sig`,
    createSocket: (url) => { const s = new FakeSocket(url); sockets.push(s); return s; },
    clock, random: () => 0.5, backoff: { baseMs: 1000, maxMs: 8000 }, pingIntervalMs: 0,
  });
  const last = () => sockets[sockets.length - 1]!;
  void client.connect();
  await settle(); last().open(); last().receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 }); await settle();
  last().drop(1006);
  const p = client.sendMessage({ conversationId: CONV }, 'x', { clientMsgId: 'a1' });
  p.catch(() => {});
  who.tid = 'default'; who.sub = ME.toUpperCase();
  await clock.advance(1000);
  await settle(); last().open(); last().receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 }); await settle();
  assert.deepEqual(last().framesOf('chat_message').map((f) => f.clientMsgId), ['a1']);
  last().receive({ type: 'message_sent', id: 'i1', clientMsgId: 'a1', conversationId: CONV, seq: 1, timestamp: 1, pos: 1 });
  assert.equal((await p).id, 'i1');
  client.close();
  assert.deepEqual(clock.pending, []);
});
