/**
 * Issue #4, end to end: every abuse control with real servers and real `ws` clients, run once
 * with the in-memory limiter/registry and once with the Redis ones (real Redis, unique key prefix
 * per server, so concurrent tests never share counters).
 */
import { describe, test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { Redis } from 'ioredis';
import type WebSocket from 'ws';
import {
  startServer,
  openClient,
  authedClient,
  handshakeStatus,
  closeAll,
  maximalMessage,
  newUserId,
  token,
  waitFor,
  startTcpProxy,
  uniqueRedisPrefix,
  HttpRefusal,
  REDIS_URL,
  type TestServer,
  type TestClient,
  type Frame,
} from '../helpers/harness.js';
import type { RampartConfigInput } from '../../src/config/schema.js';
import { RawSocket, encodeFrame } from '../helpers/raw-ws.js';
import { DEFAULT_TENANT } from '../../src/auth/token-verifier.js';

type StoreKind = 'memory' | 'redis';

const usedPrefixes: string[] = [];

after(async () => {
  // Leave nothing behind in the shared Redis: every key under this file's prefixes.
  const admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await admin.connect();
  for (const prefix of usedPrefixes) {
    for await (const batch of admin.scanStream({ match: `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, count: 1000 }) as AsyncIterable<string[]>) {
      if (batch.length > 0) await admin.del(...batch);
    }
  }
  await admin.quit();
});

/** The raw HTTP answer to a WebSocket upgrade request (status line and headers). */
function rawHandshakeAnswer(wsUrl: string): Promise<string> {
  const url = new URL(wsUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname, () => {
      socket.write(
        `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://localhost\r\n\r\n`,
      );
    });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

const chat = (recipientId: string, content: string, clientMsgId?: string): Record<string, unknown> => ({
  type: 'chat_message',
  recipientId,
  content,
  ...(clientMsgId !== undefined ? { clientMsgId } : {}),
});

const ofType = (c: TestClient, type: string): Frame[] => c.frames.filter((f) => f.type === type);

/** Opens a socket and sends `auth`; resolves with the reply (auth_success or auth_failure). */
async function tryAuth(url: string, sub: string, options: WebSocket.ClientOptions = {}): Promise<{ client: TestClient; reply: Frame }> {
  const client = openClient(url, options);
  await client.opened;
  client.send({ type: 'auth', token: await token({ sub }) });
  const reply = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
  return { client, reply };
}

/** Handshake outcome: 'open' (and the client) or the HTTP status of the refusal. */
async function handshake(url: string, options: WebSocket.ClientOptions = {}): Promise<{ status: number | 'open'; client: TestClient }> {
  const client = openClient(url, options);
  try {
    await client.opened;
    return { status: 'open', client };
  } catch (err) {
    if (err instanceof HttpRefusal) return { status: err.status, client };
    throw err;
  }
}

const userKey = (userId: string): string => `${DEFAULT_TENANT}:${userId}`;

/**
 * A bare-TCP WebSocket client for the open/close cycle test: a few bytes per cycle and no client
 * library, so the cycles measure the server. Frames are masked with a zero key (valid RFC 6455).
 */
interface RawClient {
  socket: net.Socket;
  status: number;
  closed: Promise<void>;
  sendText(text: string): void;
  close(): void;
  received(marker: string): Promise<void>;
}

let abortDelay = 0;

function rawConnect(port: number, origin?: string, abortAtOnce = false): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    let text = '';
    let closeSent = false;
    const sendClose = (): void => {
      if (closeSent || socket.destroyed) return;
      closeSent = true;
      socket.write(Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]));
    };
    let waiter: { marker: string; resolve: () => void } | undefined;
    const client: RawClient = {
      socket,
      status: 0,
      closed,
      sendText(t) {
        const payload = Buffer.from(t);
        const len = payload.length;
        const header = len < 126 ? Buffer.from([0x81, 0x80 | len, 0, 0, 0, 0]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 255, 0, 0, 0, 0]);
        socket.write(Buffer.concat([header, payload]));
      },
      close: sendClose,
      received(marker) {
        if (text.includes(marker)) return Promise.resolve();
        return new Promise<void>((r, j) => {
          waiter = { marker, resolve: r };
          void closed.then(() => j(new Error(`closed before ${marker}`)));
        });
      },
    };
    socket.once('connect', () => {
      socket.write(
        'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
          (origin ? `Origin: ${origin}\r\n` : '') + '\r\n',
      );
      if (abortAtOnce) {
        // A reset (RST) at a varying moment: often while the gate is still waiting on the limiter.
        setTimeout(() => socket.resetAndDestroy(), abortDelay++ % 3);
        resolve(client);
      }
    });
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      if (client.status === 0) {
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        const m = /^HTTP\/1\.1 (\d{3})/.exec(pending.subarray(0, end).toString('latin1'));
        client.status = m ? Number(m[1]) : -1;
        pending = pending.subarray(end + 4);
        if (!abortAtOnce) resolve(client);
      }
      // Server frames are unmasked: opcode, length (7 / 16 / 64 bit), payload.
      while (pending.length >= 2) {
        const opcode = (pending[0] as number) & 0x0f;
        let len = (pending[1] as number) & 0x7f;
        let off = 2;
        if (len === 126) {
          if (pending.length < 4) return;
          len = pending.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (pending.length < 10) return;
          len = Number(pending.readBigUInt64BE(2));
          off = 10;
        }
        if (pending.length < off + len) return;
        const payload = pending.subarray(off, off + len);
        pending = pending.subarray(off + len);
        if (opcode === 0x1) text += payload.toString('utf8');
        else if (opcode === 0x8) {
          // Answer the server's close (as a browser would), then let it end the connection.
          sendClose();
        }
      }
      if (waiter && text.includes(waiter.marker)) {
        waiter.resolve();
        waiter = undefined;
      }
    });
    socket.once('close', () => {
      if (client.status === 0 && !abortAtOnce) reject(new Error('closed before the handshake answer'));
    });
  });
}

function limitsSuite(kind: StoreKind): void {
  describe(`abuse controls, ${kind} limiter`, () => {
    const servers: TestServer[] = [];
    const clients: TestClient[] = [];
    const cleanups: (() => Promise<void>)[] = [];

    afterEach(async () => {
      await closeAll(...clients.splice(0));
      for (const c of cleanups.splice(0)) await c();
      await Promise.all(servers.splice(0).map((s) => s.close()));
    });

    async function start(overrides: RampartConfigInput = {}, redisUrl = REDIS_URL): Promise<TestServer> {
      let extra: RampartConfigInput = {};
      if (kind === 'redis') {
        const redisKeyPrefix = uniqueRedisPrefix('limits');
        usedPrefixes.push(redisKeyPrefix);
        extra = { redisUrl, redisKeyPrefix };
      }
      const srv = await startServer({ ...overrides, ...extra });
      assert.equal(srv.server.limits.backend, kind);
      servers.push(srv);
      return srv;
    }
    function track<T extends TestClient>(c: T): T {
      clients.push(c);
      return c;
    }
    async function authed(url: string, sub = newUserId(), options: WebSocket.ClientOptions = {}): Promise<TestClient & { userId: string }> {
      return track(await authedClient(url, sub, {}, options));
    }

    // ── message rate limits ────────────────────────────────────────────────────────────────────

    test('burst: the 4th message within burstWindow is refused (burst_limit, retryAfter > 0) and not delivered', async () => {
      const srv = await start({ rateLimit: { burstLimit: 3, burstWindow: 1000 } });
      const a = await authed(srv.url);
      const b = await authed(srv.url);
      for (let i = 1; i <= 4; i++) a.send(chat(b.userId, `m${i}`, `c${i}`));
      const limited = await a.nextOfType('rate_limited');
      assert.equal(limited.reason, 'burst_limit');
      assert.equal(limited.clientMsgId, 'c4');
      // Bucketed window (10 buckets): a refusal may outlast the exact window by up to one bucket.
      assert.ok(typeof limited.retryAfter === 'number' && limited.retryAfter > 0 && limited.retryAfter < 1100, `retryAfter ${String(limited.retryAfter)}`);
      await a.nthOfType('message_sent', 3);
      // Once retryAfter has passed, a message is admitted again; B's stream proves m4 never came.
      await new Promise((r) => setTimeout(r, (limited.retryAfter as number) + 20));
      a.send(chat(b.userId, 'after', 'c5'));
      await b.next((f) => f.type === 'chat_message' && f.content === 'after');
      assert.deepEqual(ofType(b, 'chat_message').map((f) => f.content), ['m1', 'm2', 'm3', 'after']);
      assert.deepEqual(ofType(a, 'message_sent').map((f) => f.clientMsgId), ['c1', 'c2', 'c3', 'c5']);
    });

    test('per minute: messagesPerMinute 5 → the 6th gets minute_limit', async () => {
      const srv = await start({ rateLimit: { burstLimit: 100, burstWindow: 1000, messagesPerMinute: 5 } });
      const a = await authed(srv.url);
      const b = await authed(srv.url);
      for (let i = 1; i <= 6; i++) a.send(chat(b.userId, `m${i}`));
      const limited = await a.nextOfType('rate_limited');
      assert.equal(limited.reason, 'minute_limit');
      assert.ok((limited.retryAfter as number) > 1000, `retryAfter ${String(limited.retryAfter)} covers the minute`);
      await a.nthOfType('message_sent', 5);
      assert.equal(ofType(a, 'rate_limited').length, 1);
    });

    test('per hour: messagesPerHour 4 → the 5th gets hour_limit', async () => {
      const srv = await start({ rateLimit: { burstLimit: 100, burstWindow: 1000, messagesPerMinute: 100, messagesPerHour: 4 } });
      const a = await authed(srv.url);
      const b = await authed(srv.url);
      for (let i = 1; i <= 5; i++) a.send(chat(b.userId, `m${i}`));
      const limited = await a.nextOfType('rate_limited');
      assert.equal(limited.reason, 'hour_limit');
      await a.nthOfType('message_sent', 4);
    });

    test('the limit is per user: three sockets × 2 messages with burstLimit 3 → exactly 3 pass', async () => {
      const srv = await start({ rateLimit: { burstLimit: 3, burstWindow: 10_000 } });
      const sub = newUserId();
      const socks = [await authed(srv.url, sub), await authed(srv.url, sub), await authed(srv.url, sub)];
      const b = await authed(srv.url);
      for (const s of socks) for (let i = 0; i < 2; i++) s.send(chat(b.userId, 'x'));
      const answers = (): number => socks.reduce((n, s) => n + ofType(s, 'message_sent').length + ofType(s, 'rate_limited').length, 0);
      await waitFor(() => answers() === 6, 5000, 'six answers');
      const sent = socks.reduce((n, s) => n + ofType(s, 'message_sent').length, 0);
      const limited = socks.flatMap((s) => ofType(s, 'rate_limited'));
      assert.equal(sent, 3);
      assert.equal(limited.length, 3);
      assert.ok(limited.every((f) => f.reason === 'burst_limit'));
      await b.nthOfType('chat_message', 3);
    });

    test('a reconnect does not reset the budget', async () => {
      const srv = await start({ rateLimit: { burstLimit: 2, burstWindow: 30_000 } });
      const sub = newUserId();
      const b = await authed(srv.url);
      const first = await authed(srv.url, sub);
      first.send(chat(b.userId, 'one'));
      first.send(chat(b.userId, 'two'));
      await first.nthOfType('message_sent', 2);
      await first.close();
      const second = await authed(srv.url, sub);
      second.send(chat(b.userId, 'three'));
      const reply = await second.next((f) => f.type === 'rate_limited' || f.type === 'message_sent');
      assert.equal(reply.type, 'rate_limited');
      assert.equal(reply.reason, 'burst_limit');
    });

    test('frame budget: invalid frames count too; the 6th frame → frame_limit', async () => {
      const srv = await start({ limits: { frames: { limit: 5, windowMs: 10_000 } } });
      const a = await authed(srv.url);
      for (let i = 0; i < 6; i++) a.send('{not json');
      const limited = await a.nextOfType('rate_limited');
      assert.equal(limited.reason, 'frame_limit');
      assert.ok((limited.retryAfter as number) > 0);
      assert.equal(ofType(a, 'error').filter((f) => f.reason === 'invalid_json').length, 5);
      // A valid frame is refused as well while the budget is spent.
      a.send({ type: 'typing_indicator', recipientId: newUserId(), isTyping: true });
      await a.nthOfType('rate_limited', 2);
    });

    test('ping is answered with pong (its requestId echoed), spends the frame budget only, and is refused past it', async () => {
      const srv = await start({ limits: { frames: { limit: 4, windowMs: 60_000 }, requests: { limit: 1, windowMs: 60_000 } } });
      const a = await authed(srv.url);
      a.send({ type: 'ping' });
      assert.deepEqual(await a.nextOfType('pong'), { type: 'pong' });
      a.send({ type: 'ping', requestId: 'p-2' });
      assert.deepEqual(await a.nthOfType('pong', 2), { type: 'pong', requestId: 'p-2' });
      a.send({ type: 'ping', requestId: 'p-3' }); // the request budget (1) does not apply
      assert.deepEqual(await a.nthOfType('pong', 3), { type: 'pong', requestId: 'p-3' });
      a.send({ type: 'ping', extra: 1 });
      assert.equal((await a.nextOfType('error')).reason, 'validation_failed');
      a.send({ type: 'ping' }); // the 5th frame
      assert.equal((await a.nextOfType('rate_limited')).reason, 'frame_limit');
      assert.equal(ofType(a, 'pong').length, 3);
    });

    test('request budget (limits.requests): ack, history and list_conversations share it; the refusal names the requestId', async () => {
      const srv = await start({ limits: { requests: { limit: 3, windowMs: 60_000 } } });
      const a = await authed(srv.url);
      a.send({ type: 'ack', upTo: 0 });
      a.send({ type: 'history', peerId: newUserId(), requestId: 'h1' });
      a.send({ type: 'list_conversations', requestId: 'l1' });
      a.send({ type: 'history', peerId: newUserId(), requestId: 'h2' });
      const limited = await a.nextOfType('rate_limited');
      assert.equal(limited.requestId, 'h2');
      assert.ok((limited.retryAfter as number) > 0);
      assert.equal((await a.next((f) => f.requestId === 'h1')).type, 'history');
      assert.equal((await a.next((f) => f.requestId === 'l1')).type, 'conversations');
      a.send({ type: 'ack', upTo: 0 });
      await a.nthOfType('rate_limited', 2);
      // Chat messages have their own budget.
      const b = await authed(srv.url);
      a.send(chat(b.userId, 'still allowed', 'ok-1'));
      assert.equal((await a.next((f) => f.clientMsgId === 'ok-1')).type, 'message_sent');
    });

    test('group changes: limits.groupCreates and limits.membershipChanges refuse with group_limit naming the requestId', async () => {
      const srv = await start({ limits: { groupCreates: { limit: 2, windowMs: 60_000 }, membershipChanges: { limit: 2, windowMs: 60_000 } } });
      const a = await authed(srv.url);
      const member = newUserId();
      const replies: Frame[] = [];
      for (let i = 1; i <= 3; i++) {
        const reply = a.next((f) => f.requestId === `g${i}`, true);
        a.send({ type: 'create_group', name: `group ${i}`, memberIds: [member], requestId: `g${i}` });
        replies.push(await reply);
      }
      assert.deepEqual(replies.map((r) => r.type), ['group_updated', 'group_updated', 'rate_limited']);
      assert.equal(replies[2]!.reason, 'group_limit');
      const conversationId = String(replies[0]!.conversationId);
      const changes: Frame[] = [];
      for (let i = 1; i <= 3; i++) {
        const reply = a.next((f) => f.requestId === `m${i}`, true);
        a.send({ type: 'rename_group', conversationId, name: `renamed ${i}`, requestId: `m${i}` });
        changes.push(await reply);
      }
      assert.deepEqual(changes.map((r) => r.type), ['group_updated', 'group_updated', 'rate_limited']);
      assert.equal(changes[2]!.reason, 'group_limit');
      // The per-user budget survives a reconnect; messages to the group are not limited by it.
      await a.close();
      const again = await authed(srv.url, a.userId);
      const reply = again.next((f) => f.requestId === 'g4', true);
      again.send({ type: 'create_group', name: 'group 4', memberIds: [], requestId: 'g4' });
      assert.equal((await reply).type, 'rate_limited');
      again.send({ type: 'chat_message', conversationId, content: 'hello group', clientMsgId: 'gm' });
      assert.equal((await again.next((f) => f.clientMsgId === 'gm')).type, 'message_sent');
    });

    // ── escalation ─────────────────────────────────────────────────────────────────────────────

    test('escalation: flooding after rate_limited closes 4029 and the user is penalised; others are not', async () => {
      const srv = await start({ rateLimit: { burstLimit: 1, burstWindow: 60_000 }, limits: { maxViolations: 3, penaltyMs: 60_000 } });
      const sub = newUserId();
      const b = await authed(srv.url);
      const a = await authed(srv.url, sub);
      for (let i = 0; i < 10; i++) a.send(chat(b.userId, `m${i}`));
      const closed = await a.closed;
      assert.equal(closed.code, 4029);
      assert.equal(ofType(a, 'rate_limited').length, 4, 'maxViolations (3) strikes tolerated, the 4th closes');

      const again = await tryAuth(srv.url, sub);
      track(again.client);
      assert.equal(again.reply.type, 'auth_failure');
      assert.equal(again.reply.reason, 'penalised');
      assert.equal((await again.client.closed).code, 4029);

      const other = await authed(srv.url);
      other.send(chat(b.userId, 'still fine'));
      await other.nextOfType('message_sent');
      await b.next((f) => f.type === 'chat_message' && f.content === 'still fine');
    });

    test('typing spam is dropped silently', async () => {
      const srv = await start({ limits: { typing: { limit: 2, windowMs: 10_000 } } });
      const a = await authed(srv.url);
      const b = await authed(srv.url);
      // Typing goes through a conversation: one message makes it.
      a.send(chat(b.userId, 'hello'));
      await b.next((f) => f.type === 'chat_message' && f.content === 'hello');
      for (let i = 0; i < 10; i++) a.send({ type: 'typing_indicator', recipientId: b.userId, isTyping: i % 2 === 0 });
      a.send(chat(b.userId, 'marker'));
      await a.nthOfType('message_sent', 2);
      await b.next((f) => f.type === 'chat_message' && f.content === 'marker');
      assert.equal(ofType(b, 'typing_indicator').length, 2);
      assert.deepEqual(a.frames.map((f) => f.type), ['auth_success', 'message_sent', 'message_sent'], 'no rate_limited, no error');
      assert.equal(a.closeCode, undefined);
    });

    // ── connection limits ──────────────────────────────────────────────────────────────────────

    test('maxConnectionsPerUser 2: the third auth gets too_many_sessions and 4008', async () => {
      const srv = await start({ maxConnectionsPerUser: 2 });
      const sub = newUserId();
      await authed(srv.url, sub);
      await authed(srv.url, sub);
      const third = await tryAuth(srv.url, sub);
      track(third.client);
      assert.equal(third.reply.reason, 'too_many_sessions');
      assert.equal((await third.client.closed).code, 4008);
      assert.equal(await srv.server.limits.registry.countUser(userKey(sub)), 2);
    });

    test("onUserLimit 'close_oldest': the oldest session is closed with 4008, the new one works", async () => {
      const srv = await start({ maxConnectionsPerUser: 2, limits: { onUserLimit: 'close_oldest' } });
      const sub = newUserId();
      const oldest = await authed(srv.url, sub);
      const middle = await authed(srv.url, sub);
      const newest = await authed(srv.url, sub);
      assert.equal((await oldest.closed).code, 4008);
      assert.equal(middle.closeCode, undefined);
      const b = await authed(srv.url);
      newest.send(chat(b.userId, 'from the new session'));
      await newest.nextOfType('message_sent');
      await b.nextOfType('chat_message');
      await waitFor(async () => (await srv.server.limits.registry.countUser(userKey(sub))) === 2, 2000, 'two user slots');
    });

    test('maxConnectionsPerIP 3: the 4th concurrent handshake gets HTTP 429', async () => {
      const srv = await start({ maxConnectionsPerIP: 3 });
      for (let i = 0; i < 3; i++) {
        const c = track(openClient(srv.url));
        await c.opened;
      }
      assert.equal(await handshakeStatus(srv.url), 429);
      await closeAll(...clients.splice(0));
      await waitFor(async () => (await srv.server.limits.registry.countIp('127.0.0.1')) === 0, 2000, 'IP slots released');
      const c = track(openClient(srv.url));
      await c.opened;
    });

    test('link-local clients of one /64 (zone ids, behind a trusted proxy) share the attempt budget', async () => {
      const srv = await start({ behindProxy: ['127.0.0.1'], limits: { connectionAttemptsPerMinute: 2 } });
      const statuses: number[] = [];
      for (const addr of ['fe80::1%eth0', 'fe80::2%eth0']) {
        const c = openClient(srv.url, { headers: { 'x-forwarded-for': addr } });
        await c.opened;
        statuses.push(101);
        await closeAll(c);
      }
      statuses.push(await handshakeStatus(srv.url, { headers: { 'x-forwarded-for': 'fe80::3%eth0' } }));
      assert.deepEqual(statuses, [101, 101, 429]);
    });

    test('connectionAttemptsPerMinute 5: the 6th handshake gets 429 although the others closed', async () => {
      const srv = await start({ limits: { connectionAttemptsPerMinute: 5 } });
      for (let i = 0; i < 5; i++) {
        const c = openClient(srv.url);
        await c.opened;
        await c.close();
      }
      assert.equal(await handshakeStatus(srv.url), 429);
    });

    test('maxUnauthenticatedPerIP 2: a 3rd unauthenticated socket gets 429; after they authenticate a new one is accepted', async () => {
      const srv = await start({ limits: { maxUnauthenticatedPerIP: 2 } });
      const u1 = track(openClient(srv.url));
      const u2 = track(openClient(srv.url));
      await Promise.all([u1.opened, u2.opened]);
      assert.equal(await handshakeStatus(srv.url), 429);
      for (const c of [u1, u2]) {
        c.send({ type: 'auth', token: await token({ sub: newUserId() }) });
        await c.nextOfType('auth_success');
      }
      const u3 = track(openClient(srv.url));
      await u3.opened;
      assert.equal(srv.server.stats().unauthenticated, 1);
    });

    test('maxUnauthenticatedPerIP 3 holds for 12 handshakes started at once (each waits on the limits backend between check and count)', async () => {
      const srv = await start({ limits: { maxUnauthenticatedPerIP: 3 } });
      const outcomes = await Promise.all(
        Array.from({ length: 12 }, async () => {
          const c = track(openClient(srv.url));
          try {
            await c.opened;
            return 'open';
          } catch {
            return 'refused';
          }
        }),
      );
      assert.equal(outcomes.filter((x) => x === 'open').length, 3, `opened: ${outcomes.join(',')}`);
      assert.equal(srv.server.stats().unauthenticated, 3);
    });

    test('maxUnauthenticated 2 (node-wide): a 3rd unauthenticated socket from another IP gets 429', async () => {
      const srv = await start({ limits: { maxUnauthenticated: 2 } });
      const u1 = track(openClient(srv.url));
      const u2 = track(openClient(srv.url, { localAddress: '127.0.0.2' }));
      await Promise.all([u1.opened, u2.opened]);
      assert.equal(await handshakeStatus(srv.url, { localAddress: '127.0.0.3' }), 429);
      u1.send({ type: 'auth', token: await token({ sub: newUserId() }) });
      await u1.nextOfType('auth_success');
      const u3 = track(openClient(srv.url, { localAddress: '127.0.0.3' }));
      await u3.opened;
    });

    test('auth brute force: 3 bad tokens from an IP lock it out (429, Retry-After the lockout left) for authLockoutMs; another IP is unaffected', async () => {
      const srv = await start({ limits: { maxAuthFailures: 3, authLockoutMs: 120_000 } });
      for (let i = 0; i < 3; i++) {
        const c = track(openClient(srv.url));
        await c.opened;
        c.send({ type: 'auth', token: 'not.a.token' });
        const reply = await c.nextOfType('auth_failure');
        assert.equal(reply.reason, 'invalid_token');
        assert.equal((await c.closed).code, 4003);
      }
      assert.equal(await handshakeStatus(srv.url), 429);
      // Retry-After says how long the lockout lasts (120 s here, less what passed), not a fixed 60.
      const answer = await rawHandshakeAnswer(srv.url);
      const retryAfter = Number(/retry-after: (\d+)/i.exec(answer)?.[1]);
      assert.ok(retryAfter > 60 && retryAfter <= 120, `Retry-After ${retryAfter}`);
      await authed(srv.url, newUserId(), { localAddress: '127.0.0.2' });
    });

    test('token refreshes share the IP\'s line and lockout: a burst of 8 bad refreshes gets 3 answered invalid_token, the rest locked_out; a session refreshing its own identity is not locked out', async () => {
      const srv = await start({ maxConnectionsPerUser: 10, limits: { maxAuthFailures: 3, authLockoutMs: 60_000 } });
      const sessions = await Promise.all(Array.from({ length: 10 }, () => authed(srv.url)));
      const innocent = sessions.pop()!;
      const late = sessions.pop()!;
      for (const c of sessions) c.send({ type: 'auth', token: 'not.a.token' });
      const reasons = await Promise.all(sessions.map(async (c) => (await c.nextOfType('auth_failure')).reason));
      assert.deepEqual(
        [reasons.filter((r) => r === 'invalid_token').length, reasons.filter((r) => r === 'locked_out').length],
        [3, 5],
        'one check per IP at a time: the 4th refusal onwards finds the IP locked out',
      );
      assert.equal(await handshakeStatus(srv.url), 429);
      // A session opened before the lockout: its refresh is answered locked_out too.
      late.send({ type: 'auth', token: 'another.bad.token' });
      assert.equal((await late.nextOfType('auth_failure')).reason, 'locked_out');
      assert.equal((await late.closed).code, 4003);
      // Behind the same address (a NAT), a session refreshing to its own user's new token goes on:
      // it proved itself already, and the lockout was someone else's doing.
      innocent.send({ type: 'auth', token: await token({ sub: innocent.userId }) });
      assert.equal((await innocent.nextOfType('auth_success')).userId, innocent.userId);
      assert.equal(innocent.closeCode, undefined);
      // Another user's valid token is answered as the lockout, not identity_change: nothing is learnt.
      innocent.send({ type: 'auth', token: await token({ sub: newUserId() }) });
      assert.equal((await innocent.nextOfType('auth_failure')).reason, 'locked_out');
    });

    test('pre-auth frame cap: a frame over maxPreAuthMessageSize closes 1009 before auth; the same size is fine after', async () => {
      const srv = await start({ maxPreAuthMessageSize: 1024 });
      const big = 'x'.repeat(2000);
      const pre = track(openClient(srv.url));
      await pre.opened;
      pre.send({ type: 'auth', token: big });
      assert.equal((await pre.closed).code, 1009);

      const a = await authed(srv.url);
      const b = await authed(srv.url);
      a.send(chat(b.userId, big));
      await a.nextOfType('message_sent');
      assert.equal((await b.nextOfType('chat_message')).content, big);
    });

    test('pre-auth frame cap on arrival: a large frame sent behind the auth frame (queued while the token is checked) closes 1009', async () => {
      const srv = await start({ maxPreAuthMessageSize: 1024 });
      const sub = newUserId();
      const raw = await RawSocket.open(srv.port);
      cleanups.push(() => raw.destroy());
      assert.equal(await raw.upgrade('/ws', [['Origin', 'http://localhost:3000']]), 101);
      // One write: the second frame arrives while the first (auth) is still being handled.
      const big = JSON.stringify(chat(newUserId(), 'x'.repeat(2000)));
      raw.write(Buffer.concat([encodeFrame(JSON.stringify({ type: 'auth', token: await token({ sub }) })), encodeFrame(big)]));
      assert.equal(await raw.closeCode(), 1009);
      assert.equal(raw.json().some((f) => f.type === 'message_sent'), false, 'the queued frame was never handled');
    });

    // ── back-pressure ──────────────────────────────────────────────────────────────────────────

    test('a client that stops reading is closed with 4030 (slow_consumer); memory stays bounded', async () => {
      const srv = await start({
        rateLimit: { burstLimit: 100_000, burstWindow: 1000, messagesPerMinute: 100_000, messagesPerHour: 100_000 },
        limits: { frames: { limit: 100_000, windowMs: 1000 }, maxBufferedBytes: 256 * 1024 },
      });
      const slow = await authed(srv.url);
      const sender = await authed(srv.url);
      (slow.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
      const content = '€'.repeat(4500); // 13.5 kB of UTF-8 per message: fewer round trips to fill the kernel buffers
      const BATCH = 25;
      const CAP = 64 * 1024 * 1024; // bytes we are prepared to push before calling it unbounded
      let sentBytes = 0;
      let batches = 0;
      while (srv.server.stats().open > 1) {
        assert.ok(sentBytes < CAP, `slow reader still open after ${sentBytes} bytes`);
        for (let i = 0; i < BATCH; i++) sender.send(chat(slow.userId, content));
        sentBytes += BATCH * Buffer.byteLength(content);
        batches++;
        await sender.nthOfType('message_sent', batches * BATCH);
      }
      const line = srv.logs.find((l) => l.includes('"reason":"slow_consumer"'));
      assert.ok(line, 'slow_consumer security event logged');
      assert.match(line, /"code":4030/);
      assert.equal(srv.server.stats().open, 1, 'only the sender is left');
      // The sender is unaffected.
      assert.equal(sender.closeCode, undefined);
    });

    /**
     * A user with `n` maximal messages waiting (~16 MB for 250: more than the loopback kernel
     * buffers hold), and a raw client of theirs that stops reading the moment auth_success arrives
     * (ws' own client would resume its socket when its parser drains): the paced replay stalls on
     * a full socket, 256 KiB of unsent bytes allowed.
     */
    async function stalledReplay(n: number): Promise<{ srv: TestServer; sender: TestClient; sub: string; slow: RawSocket }> {
      const srv = await start({
        rateLimit: { burstLimit: 100_000, burstWindow: 1000, messagesPerMinute: 100_000, messagesPerHour: 100_000 },
        limits: { frames: { limit: 100_000, windowMs: 1000 }, maxBufferedBytes: 256 * 1024 },
      });
      const sender = await authed(srv.url);
      const sub = newUserId();
      for (let i = 0; i < n; i++) {
        const { content, attachments } = maximalMessage(i);
        sender.send({ ...chat(sub, content), attachments });
      }
      await sender.nthOfType('message_sent', n);
      const slow = await RawSocket.open(srv.port);
      cleanups.push(() => slow.destroy());
      assert.equal(await slow.upgrade('/ws', [['Origin', 'http://localhost:3000']]), 101);
      slow.sendText(JSON.stringify({ type: 'auth', token: await token({ sub }) }));
      await slow.until(() => slow.json().some((f) => f.type === 'auth_success'));
      slow.socket.pause();
      return { srv, sender, sub, slow };
    }

    test('a client that stops reading during a long inbox replay: live frames held for it count as unsent bytes → 4030', async () => {
      const { srv, sender, sub } = await stalledReplay(250);
      const content = 'x'.repeat(4500);
      const closed = (): string | undefined => srv.logs.find((l) => l.includes('"reason":"slow_consumer"'));
      let sent = 0;
      while (!closed()) {
        assert.ok(sent < 1000, `the stalled session was not closed after ${sent} live messages (${sent * 4500} chars held)`);
        for (let i = 0; i < 10; i++) sender.send(chat(sub, content));
        sent += 10;
        await sender.nthOfType('message_sent', 250 + sent);
      }
      assert.match(closed()!, /"code":4030/);
      // Closed at the bound: in the batch that crossed 256 KiB held.
      assert.ok(sent <= Math.ceil((256 * 1024) / 4500) + 10, `closed after ${sent} live messages, not at the bound`);
      // A forced close: the socket is destroyed after a short grace even though the client never reads.
      await waitFor(() => srv.server.stats().open === 1, 5000, 'the stalled session to be gone');
      assert.equal(sender.closeCode, undefined);
    });

    test('an ack ahead of what the session was sent moves the position only as far as the stream went', async () => {
      // Its paced replay stalls early, and it acks everything anyway (a client acking ahead, mid-replay).
      const N = 250;
      const { srv, sub, slow } = await stalledReplay(N);
      slow.sendText(JSON.stringify({ type: 'ack', upTo: N }));
      // Once the ack frame was accepted, its write is on the user's ack tail, which the next
      // session's resume-point read waits for (per-user Redis limits answer in command order).
      const acksIn = async (): Promise<number> => (await srv.server.metrics.framesIn.get()).values.find((v) => v.labels.type === 'ack')?.value ?? 0;
      await waitFor(async () => (await acksIn()) === 1, 5000, 'the ack frame to be accepted');
      slow.destroy();
      await waitFor(() => srv.server.stats().open === 1, 5000, 'the slow session to be gone');
      // A new session without a device resumes from the user's acknowledged position.
      const next = await authed(srv.url, sub);
      const auth = next.frames.find((f) => f.type === 'auth_success')!;
      const resumeAfter = Number(auth.resumeAfter);
      assert.equal(auth.lastPos, N);
      assert.ok(resumeAfter > 0 && resumeAfter < N, `the ack moved the position to ${resumeAfter}: only what was sent (< ${N}) may be acknowledged`);
      await next.nthOfType('chat_message', N - resumeAfter);
      const positions = next.frames.filter((f) => f.type === 'chat_message').map((f) => Number(f.pos));
      assert.deepEqual(positions, Array.from({ length: N - resumeAfter }, (_, i) => resumeAfter + 1 + i), 'the rest is replayed');
    });

    // ── proxies ────────────────────────────────────────────────────────────────────────────────

    test('behindProxy: X-Forwarded-For from a trusted proxy decides the IP', async () => {
      const srv = await start({ behindProxy: ['127.0.0.1'], maxConnectionsPerIP: 1 });
      const x1 = track(openClient(srv.url, { headers: { 'x-forwarded-for': '203.0.113.1' } }));
      const x2 = track(openClient(srv.url, { headers: { 'x-forwarded-for': '203.0.113.2' } }));
      await Promise.all([x1.opened, x2.opened]);
      assert.equal(await handshakeStatus(srv.url, { headers: { 'x-forwarded-for': '203.0.113.1' } }), 429);
      assert.equal(await srv.server.limits.registry.countIp('203.0.113.1'), 1);
      assert.equal(await srv.server.limits.registry.countIp('203.0.113.2'), 1);
      assert.equal(await srv.server.limits.registry.countIp('127.0.0.1'), 0);
    });

    test('IPv6 clients are counted by their /64: another address of the same network is the same client', async () => {
      const srv = await start({ behindProxy: ['127.0.0.1'], maxConnectionsPerIP: 1 });
      const x1 = track(openClient(srv.url, { headers: { 'x-forwarded-for': '2001:db8:1:2::1' } }));
      await x1.opened;
      assert.equal(await handshakeStatus(srv.url, { headers: { 'x-forwarded-for': '2001:db8:1:2:ffff:eeee:dddd:cccc' } }), 429);
      const other = track(openClient(srv.url, { headers: { 'x-forwarded-for': '2001:db8:1:3::1' } }));
      await other.opened;
      assert.equal(await srv.server.limits.registry.countIp('2001:db8:1:2::/64'), 1);
      assert.equal(await srv.server.limits.registry.countIp('2001:db8:1:3::/64'), 1);
    });

    test('limits.ipv6PrefixLength 128 counts IPv6 clients by address', async () => {
      const srv = await start({ behindProxy: ['127.0.0.1'], maxConnectionsPerIP: 1, limits: { ipv6PrefixLength: 128 } });
      const x1 = track(openClient(srv.url, { headers: { 'x-forwarded-for': '2001:db8:1:2::1' } }));
      const x2 = track(openClient(srv.url, { headers: { 'x-forwarded-for': '2001:db8:1:2::2' } }));
      await Promise.all([x1.opened, x2.opened]);
      assert.equal(await srv.server.limits.registry.countIp('2001:db8:1:2::1'), 1);
    });

    test('without behindProxy X-Forwarded-For is ignored', async () => {
      const srv = await start({ maxConnectionsPerIP: 1 });
      const x1 = track(openClient(srv.url, { headers: { 'x-forwarded-for': '203.0.113.1' } }));
      await x1.opened;
      assert.equal(await handshakeStatus(srv.url, { headers: { 'x-forwarded-for': '203.0.113.2' } }), 429);
      assert.equal(await srv.server.limits.registry.countIp('127.0.0.1'), 1);
    });

    // ── resilience and accounting ──────────────────────────────────────────────────────────────

    test('a flood of 10,000 frames from one client leaves another pair able to authenticate and chat', async () => {
      // Violations tolerated so the flooder keeps being processed (not just closed after 20 strikes).
      const srv = await start({ limits: { maxViolations: 1_000_000, maxBufferedBytes: 16 * 1024 * 1024 } });
      const flooder = await authed(srv.url);
      const target = newUserId();
      for (let i = 0; i < 10_000; i++) flooder.send(i % 3 === 0 ? chat(target, `flood ${i}`) : i % 3 === 1 ? '{"type":' : '[]');
      const [c, d] = await Promise.all([authed(srv.url), authed(srv.url)]);
      c.send(chat(d.userId, 'ping'));
      await d.next((f) => f.type === 'chat_message' && f.content === 'ping');
      d.send(chat(c.userId, 'pong'));
      await c.next((f) => f.type === 'chat_message' && f.content === 'pong');
      // The flooder was limited: refused frames, or closed 4029 once its queue overflowed.
      await waitFor(() => ofType(flooder, 'rate_limited').length > 0 || flooder.closeCode === 4029, 10_000, 'the flooder to be limited');
      assert.ok(ofType(flooder, 'message_sent').length <= 30, 'no more than the frame budget got through');
    });

    test('counters are released on every close path (open/close cycles)', async () => {
      const CYCLES = 10_000;
      const CONCURRENCY = 50;
      const srv = await start({
        logLevel: 'error', // ~8,000 security-event lines would cost more than the cycles themselves
        maxConnectionsPerIP: 1000,
        maxConnectionsPerUser: 1000,
        limits: { connectionAttemptsPerMinute: 1_000_000, maxUnauthenticatedPerIP: 1000, maxAuthFailures: 1_000_000 },
      });
      const users = Array.from({ length: 20 }, () => newUserId());
      const tokens = await Promise.all(users.map((sub) => token({ sub })));
      const counts = { refused: 0, unauthenticated: 0, authenticated: 0, badToken: 0, terminatedMidAuth: 0, abortedHandshake: 0 };

      async function cycle(i: number): Promise<void> {
        const tok = tokens[i % tokens.length] as string;
        switch (i % 6) {
          case 0: {
            const c = await rawConnect(srv.port, 'https://evil.test');
            assert.equal(c.status, 403);
            await c.closed;
            counts.refused++;
            return;
          }
          case 1: {
            const c = await rawConnect(srv.port);
            assert.equal(c.status, 101);
            c.close();
            await c.closed;
            counts.unauthenticated++;
            return;
          }
          case 2: {
            const c = await rawConnect(srv.port);
            c.sendText(JSON.stringify({ type: 'auth', token: tok }));
            await c.received('auth_success');
            c.close();
            await c.closed;
            counts.authenticated++;
            return;
          }
          case 3: {
            const c = await rawConnect(srv.port);
            c.sendText('{"type":"auth","token":"bad.token.here"}');
            await c.received('auth_failure');
            await c.closed;
            counts.badToken++;
            return;
          }
          case 4: {
            const c = await rawConnect(srv.port);
            c.sendText(JSON.stringify({ type: 'auth', token: tok }));
            c.socket.destroy();
            await c.closed;
            counts.terminatedMidAuth++;
            return;
          }
          default: {
            // Gone while the gate is still deciding (or right after the upgrade).
            const c = await rawConnect(srv.port, undefined, true);
            await c.closed;
            counts.abortedHandshake++;
          }
        }
      }

      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < CYCLES) await cycle(next++);
        }),
      );
      assert.equal(Object.values(counts).reduce((a, b) => a + b, 0), CYCLES);
      const { registry } = srv.server.limits;
      const zero = async (): Promise<boolean> => {
        const s = srv.server.stats();
        if (s.open + s.unauthenticated + s.unauthenticatedIps + s.users !== 0) return false;
        if ((await registry.countIp('127.0.0.1')) !== 0) return false;
        for (const u of users) if ((await registry.countUser(userKey(u))) !== 0) return false;
        return true;
      };
      await waitFor(zero, 5000, 'every counter back at zero');
      assert.deepEqual(srv.server.stats(), { open: 0, unauthenticated: 0, unauthenticatedIps: 0, users: 0 });
    });

    if (kind === 'redis') {
      test('Redis unreachable: new handshakes get 503, existing sessions keep chatting, recovery is automatic', async () => {
        const target = new URL(REDIS_URL);
        const proxy = await startTcpProxy(target.hostname, Number(target.port || 6379));
        cleanups.push(() => proxy.close());
        const srv = await start({}, proxy.url);
        const a = await authed(srv.url);
        const b = await authed(srv.url);

        await proxy.stop();
        await waitFor(
          async () => {
            const h = await handshake(srv.url);
            if (h.status === 'open') h.client.terminate(); // the outage not noticed yet
            return h.status === 503;
          },
          5000,
          'handshakes refused with 503',
        );
        a.send(chat(b.userId, 'during the outage'));
        await a.nextOfType('message_sent');
        await b.next((f) => f.type === 'chat_message' && f.content === 'during the outage');
        b.send(chat(a.userId, 'reply during the outage'));
        await a.next((f) => f.type === 'chat_message' && f.content === 'reply during the outage');

        await proxy.start();
        let fresh: TestClient | undefined;
        await waitFor(
          async () => {
            const h = await handshake(srv.url);
            if (h.status === 'open') fresh = h.client;
            return h.status === 'open';
          },
          10_000,
          'handshakes accepted again',
          100,
        );
        track(fresh as TestClient);
        const c = await authed(srv.url);
        c.send(chat(a.userId, 'after recovery'));
        await a.next((f) => f.type === 'chat_message' && f.content === 'after recovery');
      });
    }
  });
}

limitsSuite('memory');
limitsSuite('redis');
