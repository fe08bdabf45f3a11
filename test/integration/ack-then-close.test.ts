/**
 * docs/protocol.md §6: an `ack` followed by a reconnect on the same node never replays what was
 * acked. The SDK's close() sends its last ack and closes the socket at once. With Redis limits the
 * ack's request-budget answer is a round trip away: the ack was dropped when its session had
 * closed meanwhile, and a reconnect right after could read the resume point before the ack was
 * written. Both limiters; the reconnect follows the close at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startServer, newUserId, token, openClient, uniqueRedisPrefix, dropRedisPrefix, REDIS_URL, type TestClient } from '../helpers/harness.js';
import { RawSocket, encodeFrame } from '../helpers/raw-ws.js';

async function authed(url: string, sub: string, extra: Record<string, unknown> = {}): Promise<TestClient> {
  const c = openClient(url);
  await c.opened;
  c.send({ type: 'auth', token: await token({ sub }), ...extra });
  await c.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
  return c;
}

const ROUNDS = 10;
for (const mode of ['memory', 'redis'] as const) {
  test(`${mode} limits: an ack, the close right after it, and an immediate reconnect of the device: it resumes after the ack`, { timeout: 60_000 }, async () => {
    const prefix = uniqueRedisPrefix('ack-close');
    const srv = await startServer(mode === 'redis' ? { redisUrl: REDIS_URL, redisKeyPrefix: prefix } : {});
    const admin = new Redis(REDIS_URL, { lazyConnect: true });
    const clients: TestClient[] = [];
    try {
      const rid = newUserId();
      const w = await authed(srv.url, newUserId());
      clients.push(w);
      const results: { acked: number; resumeAfter: number }[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        w.send({ type: 'chat_message', recipientId: rid, content: `m${round}` });
        await w.nthOfType('message_sent', round);
        const r = await RawSocket.open(srv.port);
        assert.equal(await r.upgrade('/ws', [['Origin', 'http://localhost:3000']]), 101);
        r.sendText(JSON.stringify({ type: 'auth', token: await token({ sub: rid }), deviceId: 'phone' }));
        await r.until(() => r.json().some((f) => f.type === 'chat_message' && f.content === `m${round}`));
        const last = Math.max(...r.json().filter((f) => f.type === 'chat_message').map((f) => Number(f.pos)));
        // What the SDK's close() does, in one read on the server: the last ack, then the close.
        const close = Buffer.alloc(2);
        close.writeUInt16BE(1000);
        r.write(Buffer.concat([encodeFrame(JSON.stringify({ type: 'ack', upTo: last })), encodeFrame(close, { opcode: 8 })]));
        await r.closed;
        const again = await authed(srv.url, rid, { deviceId: 'phone' });
        clients.push(again);
        const ok = again.frames.find((f) => f.type === 'auth_success')!;
        results.push({ acked: last, resumeAfter: Number(ok.resumeAfter) });
        again.ws.close();
        await again.closed;
      }
      assert.deepEqual(
        results.map((r) => r.resumeAfter),
        results.map((r) => r.acked),
        'each reconnect resumes after what the device acknowledged',
      );
    } finally {
      for (const c of clients) c.terminate();
      await Promise.all(clients.map((c) => c.closed));
      await srv.close();
      if (mode === 'redis') {
        await admin.connect();
        await dropRedisPrefix(admin, prefix);
      }
      admin.disconnect();
    }
  });
}
