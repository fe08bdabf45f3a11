/**
 * A later, shorter `rate_limited` never ends a running send wait early: the wait is
 * max(what is left of it, the new one), from now, read off one reading of the clock. With two
 * readings, a clock that moved between them (Date.now() crossing a millisecond) shortened the
 * running wait by that much, and the held send went out before the first refusal's retryAfter.
 * The clock here moves 1 ms once, right after the first read while the second refusal is handled.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeClient, timedFrames } from '../helpers/fake-client-env.js';

const CONV = '33333333-3333-4333-8333-333333333333';

test('a shorter rate_limited during a running send wait never ends that wait early', async () => {
  const { clock, client, last, accept } = fakeClient({ options: { sendBudget: { limit: 100, windowMs: 1000 } } }); // the send budget's pacing out of the way
  void client.connect();
  await accept();
  const ws = last();
  client.sendMessage({ conversationId: CONV }, 'hi', { clientMsgId: 'c1' }).catch(() => {});
  await clock.advance(0);
  assert.equal(ws.framesOf('chat_message').length, 1);

  const t0 = clock.now();
  ws.receive({ type: 'rate_limited', clientMsgId: 'c1', retryAfter: 1000, reason: 'message_limit' });
  const firstWaitEnds = t0 + 1000;
  await clock.advance(500);
  clock.jumpAfterNextRead(1);
  ws.receive({ type: 'rate_limited', clientMsgId: 'c1', retryAfter: 10, reason: 'message_limit' });
  const resent = timedFrames(ws, clock, (f) => f.type === 'chat_message');
  await clock.advance(firstWaitEnds + 50 - clock.now());
  client.close();
  assert.ok(resent.length > 0, 'the send goes again once the waits are over');
  assert.ok(resent[0]!.at >= firstWaitEnds, `resent at +${resent[0]!.at - t0} ms: before the first refusal's retryAfter (1000 ms) was over`);
});
