/**
 * Real server: told user_changed, an app that sends as the new user at once has that send stored
 * as the new user, not failed with user_changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createNodeClient } from '../../src/client/node.js';
import type { WebSocketLike } from '../../src/client/socket.js';
import { signDevToken } from '../../src/auth/dev-token.js';
import { startServer, newUserId, TEST_SECRET, within } from '../helpers/harness.js';

const FAST_RETRY = { backoff: { baseMs: 50, maxMs: 400 }, shutdownDelayMaxMs: 200, ackDelayMs: 20 };

/** A `ws` socket whose first `group_updated` answer is lost with the connection (terminated). */
function answerLosingSocket(url: string, state: { loseAnswer: boolean }): WebSocketLike {
  const ws = new WebSocket(url);
  const w: WebSocketLike = {
    get readyState() {
      return ws.readyState;
    },
    send: (d: string) => ws.send(d),
    close: (c?: number, r?: string) => ws.close(c, r),
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
  };
  ws.onopen = (e) => w.onopen?.(e);
  ws.onmessage = (e) => {
    const data = String(e.data);
    if (state.loseAnswer && (JSON.parse(data) as { type?: string }).type === 'group_updated') {
      state.loseAnswer = false;
      ws.terminate();
      return;
    }
    w.onmessage?.({ data });
  };
  ws.onclose = (e) => w.onclose?.({ code: e.code, reason: e.reason });
  ws.onerror = (e) => w.onerror?.(e);
  return w;
}

test('real server: told user_changed, the app sends as the new user at once; that send is stored as bob, not failed with user_changed', { timeout: 60_000 }, async () => {
  const srv = await startServer();
  const alice = newUserId();
  const bob = newUserId();
  const carol = newUserId();
  const state = { loseAnswer: true };
  let calls = 0;
  const client = createNodeClient({
    url: srv.url,
    token: () => signDevToken(TEST_SECRET, { sub: calls++ === 0 ? alice : bob, ttl: 3600 }),
    createSocket: (url) => answerLosingSocket(url, state),
    ...FAST_RETRY,
    pingIntervalMs: 0,
  });
  try {
    await client.connect();
    const outcome = await within(
      client.createGroup('team', [carol], { clientMsgId: 'alice-create' }).then(
        () => ({ reason: 'resolved', byBob: undefined as Promise<string> | undefined }),
        (e: { reason?: string }) => ({
          reason: String(e.reason),
          // The app, now signed in as bob, writes bob's message.
          byBob: client.sendMessage({ recipientId: carol }, 'hello from bob', { clientMsgId: 'bob-1' }).then(
            (r) => `sent ${r.id !== undefined}`,
            (err: { reason?: string }) => `failed ${err.reason}`,
          ),
        }),
      ),
      20_000,
      'the create to settle',
    );
    assert.equal(outcome.reason, 'user_changed');
    assert.equal(await within(outcome.byBob!, 20_000, 'bob’s send to settle'), 'sent true', 'bob’s own send, made after the switch, goes out');
  } finally {
    client.close();
    await srv.close();
  }
});
