/**
 * Requests one connection has admitted and not yet answered are bounded (`limits.maxQueuedFrames`):
 * a client that stops reading its replies while sending `history` requests cannot make the server
 * hold one entry per request ever sent. Each waits behind a reply paced by the socket's unsent
 * bytes; none of them is output, so `maxBufferedBytes` never saw them, and the session was not
 * busy, so `maxQueuedFrames` did not either (before: 40,000 requests held ~45 MB for one
 * connection, which stayed open). Now past the bound the connection's frames wait in its queue,
 * and past that the connection is closed 4029 `queue_overflow`. A client that reads gets every
 * reply, in order. With the Redis limiter (decisions arrive later) a request is counted before its
 * decision and a waiting frame wakes when any one request ends: the first version of this bound
 * counted after the decision and waited on the last request only, so a `set_presence` (answered
 * out of the history chain) settled first and the wait re-entered itself forever — a microtask loop
 * that froze the whole server.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { REDIS_URL, authedClient, closeAll, maximalMessage, startServer, uniqueRedisPrefix, waitFor, type TestClient, type TestServer } from '../helpers/harness.js';

const OPEN = {
  rateLimit: { burstLimit: 100_000, burstWindow: 1000, messagesPerMinute: 100_000, messagesPerHour: 100_000 },
  limits: { maxBufferedBytes: 256 * 1024, maxQueuedFrames: 8, frames: { limit: 100_000, windowMs: 1000 }, requests: { limit: 100_000, windowMs: 1000 } },
};

let srv: TestServer;
const clients: TestClient[] = [];
before(async () => {
  srv = await startServer(OPEN);
});
after(async () => {
  await closeAll(...clients);
  await srv.close();
});

type Authed = Awaited<ReturnType<typeof authedClient>>;
async function pair(): Promise<[Authed, Authed]> {
  const a = await authedClient(srv.url);
  const b = await authedClient(srv.url);
  clients.push(a, b);
  for (let i = 0; i < 20; i++) a.send({ type: 'chat_message', recipientId: b.userId, ...maximalMessage(i) });
  await a.nthOfType('message_sent', 20);
  return [a, b];
}

test('a client that stops reading while it sends requests is closed queue_overflow, not held in memory', async () => {
  const [a, b] = await pair();
  const closed = (): string | undefined => srv.logs.find((l) => l.includes('"reason":"queue_overflow"') && l.includes(a.userId));
  // The client stops reading: large replies fill its socket, later requests wait for it to drain.
  const raw = (a.ws as unknown as { _socket: import('node:net').Socket })._socket;
  raw.pause();
  let sent = 0;
  while (closed() === undefined) {
    assert.ok(sent < 2000, `still open after ${sent} requests`);
    for (let i = 0; i < 20; i++) a.send({ type: 'history', peerId: b.userId, limit: 100, requestId: `r${sent + i}` });
    sent += 20;
    await waitFor(() => a.ws.bufferedAmount === 0, 5000, 'the client flushed its requests');
    await new Promise((r) => setImmediate(r));
  }
  // Within the bounds: 8 requests answered or waiting, 8 frames queued, then the overflow.
  assert.ok(sent <= 200, `closed only after ${sent} requests`);
  assert.match(closed()!, /"code":4029/);
});

test('a client that reads gets every reply in order: requests past the bound wait in the queue', async () => {
  const [a, b] = await pair();
  const N = 15; // 8 admitted, 7 waiting in the session's queue (bound 8)
  for (let i = 0; i < N; i++) a.send({ type: 'history', peerId: b.userId, limit: 20, requestId: `q${i}` });
  await a.nthOfType('history', N);
  assert.deepEqual(
    a.frames.filter((f) => f.type === 'history').map((f) => f.requestId),
    Array.from({ length: N }, (_, i) => `q${i}`),
  );
  assert.equal(a.closeCode, undefined);
});

test('Redis limiter: a client mixing set_presence with unread history replies is closed, and the server keeps answering others', async () => {
  const redisSrv = await startServer({ ...OPEN, redisUrl: REDIS_URL, redisKeyPrefix: uniqueRedisPrefix('pending-bound') });
  const local: TestClient[] = [];
  try {
    const a = await authedClient(redisSrv.url);
    const b = await authedClient(redisSrv.url);
    const c = await authedClient(redisSrv.url);
    local.push(a, b, c);
    for (let i = 0; i < 20; i++) a.send({ type: 'chat_message', recipientId: b.userId, ...maximalMessage(i) });
    await a.nthOfType('message_sent', 20);
    const raw = (a.ws as unknown as { _socket: import('node:net').Socket })._socket;
    raw.pause();
    const closed = (): boolean => redisSrv.logs.some((l) => l.includes('"reason":"queue_overflow"') && l.includes(a.userId));
    let n = 0;
    for (let batch = 0; !closed(); batch++) {
      assert.ok(batch < 100, `still open after ${n} frames`);
      for (let i = 0; i < 4; i++) a.send({ type: 'history', peerId: b.userId, limit: 100, requestId: `h${n++}` });
      a.send({ type: 'set_presence', visible: true, requestId: `p${n++}` });
      await waitFor(() => a.ws.bufferedAmount === 0, 5000, 'the client flushed its frames');
      // Another user's request is answered: the server is not frozen.
      c.send({ type: 'list_conversations', requestId: `alive${batch}` });
      await c.next((f) => f.requestId === `alive${batch}`);
    }
  } finally {
    await closeAll(...local);
    await redisSrv.close();
  }
});
