/**
 * docs/client.md, Reconnecting: an expired token (4005, or `auth_failure token_expired`)
 * reconnects with a fresh token within the first backoff step; a token provider that keeps handing
 * out expired tokens backs off like any failure. The client used the grown backoff whenever the
 * expired session followed earlier failed attempts (its `fresh_token` verdict was never read).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RampartClient } from '../../src/client/rampart-client.js';
import { FakeClock, FakeSocket, fakeJwt, settle } from '../helpers/fake-client-env.js';

const ME = '11111111-1111-4111-8111-111111111111';

test('a session that ends with 4005 after earlier failed attempts reconnects within the first backoff step', async () => {
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
  });
  const delays: { reason: string; retryInMs?: number }[] = [];
  client.on('disconnected', (d) => delays.push({ reason: d.reason, ...(d.retryInMs !== undefined ? { retryInMs: d.retryInMs } : {}) }));
  try {
    void client.connect();
    await settle();
    // Two handshakes lost (the network is flaky): the backoff grows, as it should.
    sockets.at(-1)!.drop(1006);
    await clock.advance(delays.at(-1)!.retryInMs!);
    await settle();
    sockets.at(-1)!.drop(1006);
    await clock.advance(delays.at(-1)!.retryInMs!);
    await settle();
    // Third attempt authenticates; its token expires (the server closes 4005, token_expired).
    const s = sockets.at(-1)!;
    s.open();
    s.receive({ type: 'auth_success', userId: ME, resumeAfter: 0, lastPos: 0 });
    await settle();
    s.receive({ type: 'auth_failure', reason: 'token_expired' });
    s.drop(4005);
    const last = delays.at(-1)!;
    assert.ok(
      last.retryInMs! < 1000,
      `expected a reconnect within the first backoff step (< baseMs 1000) for an expired token; got ${last.retryInMs} ms (delays: ${JSON.stringify(delays)})`,
    );
  } finally {
    client.close();
  }
});
