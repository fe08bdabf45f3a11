/**
 * A's token, then B's for an attempt that never authenticates, then A's again: A's position is
 * kept (only the attempt as B leaves out `after`), so A is not handed events it already had.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RampartClient } from '../../src/client/rampart-client.js';
import { FakeClock, FakeSocket, settle } from '../helpers/fake-client-env.js';

const ME = '11111111-1111-4111-8111-111111111111';
const OTHER = '55555555-5555-4555-8555-555555555555';
const PEER = '22222222-2222-4222-8222-222222222222';
const CONV = '33333333-3333-4333-8333-333333333333';
const msg = (pos: number) => ({ type: 'chat_message', pos, id: `m${pos}`, conversationId: CONV, seq: pos, senderId: PEER, content: `c${pos}`, mentions: [], hashtags: [], links: [], timestamp: 1 });

test('A’s token, then B’s for an attempt that never authenticates, then A’s again: A is not handed events it already had', async () => {
  const clock = new FakeClock();
  const sockets: FakeSocket[] = [];
  const who = { sub: ME };
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const client = new RampartClient({
    url: 'ws://rampart.test/ws',
    token: () => `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub: who.sub, exp: 2_000_000_000 })}.sig`,
    createSocket: (url) => { const s = new FakeSocket(url); sockets.push(s); return s; },
    clock, random: () => 0.5, backoff: { baseMs: 1000, maxMs: 8000 }, pingIntervalMs: 0,
  });
  const seen: string[] = [];
  client.on('message', (m) => seen.push(m.id));
  let retryIn = -1;
  client.on('disconnected', (d) => (retryIn = d.retryInMs ?? -1));
  const last = () => sockets[sockets.length - 1]!;
  void client.connect();
  await settle(); last().open(); last().receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 }); await settle();
  for (const p of [1, 2, 3]) last().receive(msg(p));
  last().drop(1006); // before the ack went out
  who.sub = OTHER;
  await clock.advance(retryIn);
  await settle();
  last().drop(1006); // B's attempt fails before auth_success
  who.sub = ME; // back to A
  await clock.advance(retryIn);
  await settle();
  last().open();
  await settle();
  const auth = last().framesOf('auth')[0]!;
  void auth; // auth.after is undefined on current code (position dropped)
  // The server (no ack from this device) replays what it has.
  last().receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 3 });
  for (const p of [1, 2, 3]) last().receive(msg(p));
  await settle();
  assert.deepEqual(seen, ['m1', 'm2', 'm3'], 'each once');
  client.close();
});
