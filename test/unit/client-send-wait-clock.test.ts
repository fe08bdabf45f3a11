/**
 * A later, shorter `rate_limited` never ends a running send wait early: the wait is
 * max(what is left of it, the new one), from now, read off one reading of the clock. With two
 * readings, a clock that moved between them (Date.now() crossing a millisecond) shortened the
 * running wait by that much, and the held send went out before the first refusal's retryAfter.
 * The clock here moves 1 ms once, right after the first read while the second refusal is handled.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Clock } from '../../src/client/clock.js';
import { RampartClient } from '../../src/client/rampart-client.js';
import { FakeSocket, fakeJwt, settle } from '../helpers/fake-client-env.js';

const ME = '11111111-1111-4111-8111-111111111111';
const CONV = '33333333-3333-4333-8333-333333333333';

class TickClock implements Clock {
  t = 1_700_000_000_000;
  tick = 0;
  private seq = 0;
  private timers: { id: number; at: number; fn: () => void }[] = [];
  /** The next read returns the time, then the clock moves `tick` ms (a millisecond boundary crossed right after it). */
  now(): number {
    const v = this.t;
    this.t += this.tick;
    this.tick = 0;
    return v;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const timer = { id: ++this.seq, at: this.t + ms, fn };
    this.timers.push(timer);
    return timer.id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== handle);
  }
  async advanceTo(end: number): Promise<void> {
    for (;;) {
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
      await settle();
    }
    this.t = Math.max(this.t, end);
    await settle();
  }
}

test('a shorter rate_limited during a running send wait never ends that wait early', async () => {
  const clock = new TickClock();
  const sockets: FakeSocket[] = [];
  const client = new RampartClient({
    url: 'ws://rampart.test/ws',
    token: () => fakeJwt(clock.t + 3_600_000, ME),
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    clock,
    random: () => 0.5,
    pingIntervalMs: 0,
    sendBudget: { limit: 100, windowMs: 1000 }, // the send budget's pacing out of the way
  });
  void client.connect();
  await settle();
  const ws = sockets[0]!;
  ws.open();
  ws.receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 });
  await settle();
  client.sendMessage({ conversationId: CONV }, 'hi', { clientMsgId: 'c1' }).catch(() => {});
  await settle();
  assert.equal(ws.framesOf('chat_message').length, 1);

  const t0 = clock.t;
  ws.receive({ type: 'rate_limited', clientMsgId: 'c1', retryAfter: 1000, reason: 'message_limit' });
  const firstWaitEnds = t0 + 1000;
  await clock.advanceTo(t0 + 500);
  clock.tick = 1; // the clock moves 1 ms right after the next read (Date.now() crossing a millisecond)
  ws.receive({ type: 'rate_limited', clientMsgId: 'c1', retryAfter: 10, reason: 'message_limit' });
  let resentAt: number | undefined;
  const send = ws.send.bind(ws);
  ws.send = (data: string) => {
    send(data);
    if ((JSON.parse(data) as { type?: string }).type === 'chat_message' && resentAt === undefined) resentAt = clock.t;
  };
  await clock.advanceTo(firstWaitEnds + 50);
  client.close();
  assert.ok(resentAt !== undefined, 'the send goes again once the waits are over');
  assert.ok(resentAt >= firstWaitEnds, `resent at +${resentAt - t0} ms: before the first refusal's retryAfter (1000 ms) was over`);
});
