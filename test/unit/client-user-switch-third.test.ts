/**
 * Work made as user B (after the switch from A was seen in B's readable token) never goes out as a
 * third user whose token cannot be read: that user's auth_success fails it with user_changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RampartClient } from '../../src/client/rampart-client.js';
import { FakeClock, FakeSocket, settle } from '../helpers/fake-client-env.js';

const ME = '11111111-1111-4111-8111-111111111111';
const OTHER = '55555555-5555-4555-8555-555555555555';
const THIRD = '66666666-6666-4666-8666-666666666666';
const CONV = '33333333-3333-4333-8333-333333333333';

test('a send made as B (after A→B was seen in B’s token) does not go out as a third user whose token cannot be read', async () => {
  const clock = new FakeClock();
  const sockets: FakeSocket[] = [];
  const who: { sub: string | undefined } = { sub: ME };
  const token = (): string => {
    if (who.sub === undefined) return 'opaque-session-token-of-a-third-user';
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    return `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub: who.sub, exp: 2_000_000_000 })}.sig`;
  };
  const client = new RampartClient({
    url: 'ws://rampart.test/ws', token,
    createSocket: (url) => { const s = new FakeSocket(url); sockets.push(s); return s; },
    clock, random: () => 0.5, backoff: { baseMs: 1000, maxMs: 8000 }, pingIntervalMs: 0,
  });
  const last = () => sockets[sockets.length - 1]!;
  const acceptAs = async (userId: string) => {
    await settle();
    last().open();
    last().receive({ type: 'auth_success', userId, resumeAfter: 0, lastPos: 0 });
    await settle();
  };
  let retryIn = -1;
  client.on('disconnected', (d) => (retryIn = d.retryInMs ?? -1));
  void client.connect();
  await acceptAs(ME);
  last().drop(1006);
  who.sub = OTHER;
  await clock.advance(retryIn); // B's token read: the switch A→B is seen here
  await settle();
  const byB = client.sendMessage({ conversationId: CONV }, 'by B', { clientMsgId: 'b1' });
  byB.catch(() => {});
  last().drop(1006); // B's attempt fails before auth_success
  who.sub = undefined; // the provider now hands out an opaque token, for a third user
  await clock.advance(retryIn);
  await acceptAs(THIRD);
  const outcome = await Promise.race([byB.then(() => 'resolved', (e: { reason?: string }) => e.reason), new Promise((r) => setImmediate(() => r('pending')))]);
  const sent = last().framesOf('chat_message').map((f) => f.clientMsgId);
  client.close();
  assert.deepEqual(sent, [], 'B’s send went out on the connection authenticated as THIRD');
  assert.equal(outcome, 'user_changed');
});
