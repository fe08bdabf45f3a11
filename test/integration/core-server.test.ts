/**
 * The hardened core (issue #2) against a real server with real `ws` clients and raw TCP sockets:
 * handshake gate, authentication, pipeline rejections, malformed frames, heartbeat, resource
 * release, header timeout, logging hygiene, health endpoints.
 */
import { test, before, after, afterEach, describe } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { createSecretKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import pg from 'pg';
import {
  startServer,
  openClient,
  authedClient,
  handshakeStatus,
  closeAll,
  waitFor,
  within,
  token,
  newUserId,
  TEST_SECRET,
  PG_URL,
  type TestClient,
  type TestServer,
} from '../helpers/harness.js';
import { RawSocket, encodeFrame } from '../helpers/raw-ws.js';
import { pgStorageUrl, uniquePgSchema } from '../helpers/storage-backends.js';
import type { DevTokenClaims } from '../../src/auth/dev-token.js';
import { createRampartServer } from '../../src/server/rampart-server.js';
import { checkOrigin, serverOriginPolicy } from '../../src/gate/origin.js';
import { parseConfig } from '../../src/config/load-config.js';

const ALLOWED = 'https://app.example.com';
const MARKER = 'CONTENT-MARKER-9d1e7c';

/** Every token this file sends, to prove none reaches a log line. */
const usedTokens: string[] = [];
async function tok(sub: string, claims: Omit<DevTokenClaims, 'sub'> = {}): Promise<string> {
  const t = await token({ sub, ...claims });
  usedTokens.push(t);
  return t;
}

/** A token whose `exp` is between `minMs` and `minMs + 1000` ms away (exp has 1 s resolution). */
async function shortToken(sub: string, minMs = 700): Promise<{ token: string; exp: number }> {
  const exp = Math.ceil((Date.now() + minMs) / 1000);
  const t = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime(exp).sign(createSecretKey(Buffer.from(TEST_SECRET)));
  usedTokens.push(t);
  return { token: t, exp };
}

async function isZero(srv: TestServer): Promise<boolean> {
  const s = srv.server.stats();
  return s.open === 0 && s.unauthenticated === 0 && s.unauthenticatedIps === 0 && s.users === 0 && (await srv.server.limits.registry.countIp('127.0.0.1')) === 0;
}

function securityLines(srv: TestServer): { reason: string; code?: number; ip?: string; userId?: string; detail?: string }[] {
  return srv.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === 'security') as never;
}

let srv: TestServer;
before(async () => {
  srv = await startServer({
    allowedOrigins: [ALLOWED, 'http://localhost:3000', 'https://*.example.com'],
    maxMessageSize: 4096,
    maxPreAuthMessageSize: 1024,
    jwt: { secret: TEST_SECRET, clockTolerance: 0, maxTokenLength: 600 },
    limits: { maxAuthFailures: 1000, headersTimeout: 300, maxHeaderSize: 4096 },
  });
});
after(async () => {
  await srv.close();
});

describe('handshake gate', { timeout: 15_000 }, () => {
  test('a foreign Origin is refused with 403; an allowed one and a missing one open', async () => {
    assert.equal(await handshakeStatus(srv.url, { origin: 'https://evil.com' }), 403);
    assert.equal(await handshakeStatus(srv.url, { origin: 'https://evilexample.com' }), 403);
    const ok = openClient(srv.url, { origin: ALLOWED });
    await ok.opened;
    const sub = openClient(srv.url, { origin: 'https://a.b.example.com' });
    await sub.opened;
    const noOrigin = openClient(srv.url);
    await noOrigin.opened;
    await closeAll(ok, sub, noOrigin);
  });

  test('Origin tricks sent as raw headers are refused with 403', async () => {
    const tricks: [string, string][][] = [
      [['Origin', 'null']],
      [['Origin', ALLOWED], ['Origin', ALLOWED]],
      [['Origin', ALLOWED], ['origin', 'https://evil.com']],
      [['Origin', 'https://evil.com'], ['Origin', ALLOWED]],
      [['Origin', 'https://user@app.example.com']],
      [['Origin', 'https://app.example.com.']],
      [['Origin', 'file://']],
      [['Origin', 'chrome-extension://x']],
      [['Origin', 'HTTPS://APP.EXAMPLE.COM']],
      [['Origin', 'https://app.example.com/']],
      [['Origin', 'https://app.example.com/path']],
      [['Origin', 'https://app.example.com:443']],
      [['Origin', 'https://app.example.com:8443']],
      [['Origin', 'http://app.example.com']],
      [['Origin', 'https://example.com']],
      [['Origin', 'https://a.example.com.evil.com']],
      [['Origin', 'https://a..example.com']],
      [['Origin', `${ALLOWED}, https://evil.com`]],
      [['Origin', '']],
    ];
    for (const headers of tricks) {
      const raw = await RawSocket.open(srv.port);
      assert.equal(await raw.upgrade('/ws', headers), 403, JSON.stringify(headers));
      await raw.closed; // a refusal closes the connection
    }
    // Control: the same raw request with a good Origin upgrades.
    const raw = await RawSocket.open(srv.port);
    assert.equal(await raw.upgrade('/ws', [['Origin', ALLOWED]]), 101);
    await raw.destroy();
  });

  test('?token= is refused with 401 when allowQueryToken is false, even a valid one', async () => {
    assert.equal(await handshakeStatus(`${srv.url}?token=${await tok(newUserId())}`), 401);
    assert.equal(await handshakeStatus(`${srv.url}?x=1&token=garbage`), 401);
  });

  test('an unknown path is 404; / and /ws upgrade', async () => {
    assert.equal(await handshakeStatus(`${srv.httpUrl.replace('http', 'ws')}/nope`), 404);
    assert.equal(await handshakeStatus(`${srv.httpUrl.replace('http', 'ws')}/ws/x`), 404);
    const root = openClient(`${srv.httpUrl.replace('http', 'ws')}/`);
    await root.opened;
    await closeAll(root);
  });

  test('a refused handshake is closed by the server even when the client keeps its side open', async () => {
    const { port } = new URL(srv.httpUrl);
    const socket = connect({ port: Number(port), host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    let response = '';
    socket.on('data', (chunk: Buffer) => {
      response += chunk.toString('latin1');
    });
    const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
    socket.write(
      'GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await within(ended, 2000, 'the 404 answer');
    assert.match(response, /^HTTP\/1\.1 404 /);
    // Our side stays open. A server that only half-closed keeps reading what we write; a server
    // that destroyed the socket answers the first write with a reset, and a later one fails (EPIPE).
    const writes = setInterval(() => {
      if (socket.writable) socket.write('still here');
    }, 20);
    try {
      await within(closed, 2000, 'the server to have destroyed the socket');
    } finally {
      clearInterval(writes);
      socket.destroy();
    }
  });
});

describe('handshake gate: missing Origin refused by config, per-IP cap', { timeout: 15_000 }, () => {
  let strict: TestServer;
  before(async () => {
    strict = await startServer({ allowMissingOrigin: false, maxConnectionsPerIP: 2, allowedOrigins: [ALLOWED] });
  });
  after(async () => {
    await strict.close();
  });

  test('allowMissingOrigin: false → a client without Origin gets 403', async () => {
    assert.equal(await handshakeStatus(strict.url), 403);
    const ok = openClient(strict.url, { origin: ALLOWED });
    await ok.opened;
    await closeAll(ok);
  });

  test('maxConnectionsPerIP: 2 → the third concurrent socket gets 429; a freed slot is reusable', async () => {
    await waitFor(() => isZero(strict), 3000, 'previous sockets released');
    const a = openClient(strict.url, { origin: ALLOWED });
    const b = openClient(strict.url, { origin: ALLOWED });
    await Promise.all([a.opened, b.opened]);
    assert.equal(await handshakeStatus(strict.url, { origin: ALLOWED }), 429);
    // The cap is checked before the Origin: at the cap even a foreign Origin gets 429.
    assert.equal(await handshakeStatus(strict.url, { origin: 'https://evil.com' }), 429);
    await closeAll(a);
    await waitFor(async () => (await strict.server.limits.registry.countIp('127.0.0.1')) === 1, 3000, 'slot released');
    const c = openClient(strict.url, { origin: ALLOWED });
    await c.opened;
    await closeAll(b, c);
    await waitFor(() => isZero(strict), 3000, 'everything released');
    // Refused handshakes never keep a slot: many 403s later, two sockets still fit.
    for (let i = 0; i < 5; i++) assert.equal(await handshakeStatus(strict.url, { origin: 'https://evil.com' }), 403);
    const d = openClient(strict.url, { origin: ALLOWED });
    const e = openClient(strict.url, { origin: ALLOWED });
    await Promise.all([d.opened, e.opened]);
    await closeAll(d, e);
    await waitFor(() => isZero(strict), 3000, 'everything released again');
  });
});

describe('query-string token (allowQueryToken: true)', { timeout: 15_000 }, () => {
  let qs: TestServer;
  before(async () => {
    qs = await startServer({ allowQueryToken: true, jwt: { secret: TEST_SECRET, clockTolerance: 0 } });
  });
  after(async () => {
    await qs.close();
  });

  test('an invalid or expired query token → 401', async () => {
    assert.equal(await handshakeStatus(`${qs.url}?token=not.a.jwt`), 401);
    const expired = await tok(newUserId(), { ttl: -60 });
    assert.equal(await handshakeStatus(`${qs.url}?token=${expired}`), 401);
    const wrongKey = await token({ sub: newUserId() }, 'another-secret-another-secret-another-secret');
    usedTokens.push(wrongKey);
    assert.equal(await handshakeStatus(`${qs.url}?token=${wrongKey}`), 401);
  });

  test('refused query tokens count towards the IP lockout, as refused auth frames do', async () => {
    const strict = await startServer({ allowQueryToken: true, jwt: { secret: TEST_SECRET, clockTolerance: 0 }, limits: { maxAuthFailures: 3 } });
    try {
      for (let i = 0; i < 3; i++) assert.equal(await handshakeStatus(`${strict.url}?token=not.a.jwt`), 401);
      // Locked out now: even a valid token, by query or in an auth frame, is refused at the handshake.
      assert.equal(await handshakeStatus(`${strict.url}?token=${await tok(newUserId())}`), 429);
      assert.equal(await handshakeStatus(strict.url), 429);
    } finally {
      await strict.close();
    }
  });

  test('a client that hangs up while the gate verifies its token leaves no IP slot behind', async () => {
    const t = await tok(newUserId());
    for (let i = 0; i < 20; i++) {
      const raw = await RawSocket.open(qs.port);
      raw.write(`GET /ws?token=${t} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      await raw.destroy();
    }
    await waitFor(async () => (await qs.server.limits.registry.countIp('127.0.0.1')) === 0, 3000, 'every IP slot released');
    await waitFor(() => isZero(qs), 3000, 'released');
  });

  test('frames sent on open wait for the admission: auth_success first, then their replies, in order', async () => {
    // On PostgreSQL: the admission waits for a round trip (the resume point), so the frames arrive during it.
    const schema = uniquePgSchema('qt');
    const pgServer = await startServer({ allowQueryToken: true, storage: pgStorageUrl(schema), jwt: { secret: TEST_SECRET, clockTolerance: 0 } });
    try {
      for (let i = 0; i < 3; i++) await earlyFrames(pgServer);
    } finally {
      await pgServer.close();
      const admin = new pg.Client({ connectionString: PG_URL });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).finally(() => admin.end());
    }
  });

  async function earlyFrames(server: TestServer): Promise<void> {
    const sub = newUserId();
    const client = openClient(`${server.url}?token=${await tok(sub)}`);
    await client.opened;
    // At once, while the server still reads the resume point: nothing may answer before auth_success.
    client.send({ type: 'list_conversations', requestId: 'early-1' });
    client.send({ type: 'chat_message', recipientId: newUserId(), content: 'early', clientMsgId: 'early-2' });
    await client.next((f) => f.type === 'message_sent');
    assert.deepEqual(
      client.frames.map((f) => f.type),
      ['auth_success', 'conversations', 'message_sent'],
    );
    await closeAll(client);
  }

  test('a valid query token: the socket starts authenticated (chat works without an auth frame)', async () => {
    const sub = newUserId();
    const client = openClient(`${qs.url}?token=${await tok(sub)}`);
    await client.opened;
    const ok = await client.next((f) => f.type === 'auth_success');
    assert.equal(ok.userId, sub);
    client.send({ type: 'chat_message', recipientId: newUserId(), content: 'via query token', clientMsgId: 'q1' });
    const sent = await client.next((f) => f.type === 'message_sent');
    assert.equal(sent.clientMsgId, 'q1');
    assert.equal(client.frames.some((f) => f.type === 'error' || f.type === 'auth_failure'), false);
    await closeAll(client);
    await waitFor(() => isZero(qs), 3000, 'released');
    // The query string never reaches the logs.
    assert.ok(!qs.logs.join('\n').includes('token='));
    for (const t of usedTokens) assert.ok(!qs.logs.join('\n').includes(t));
  });
});

describe('authentication', { timeout: 15_000 }, () => {
  test('a chat_message before auth → close 4002', async () => {
    const client = openClient(srv.url);
    await client.opened;
    client.send({ type: 'chat_message', recipientId: newUserId(), content: MARKER });
    assert.equal((await client.closed).code, 4002);
  });

  test('garbage or a binary frame before auth → close 4002', async () => {
    const a = openClient(srv.url);
    const b = openClient(srv.url);
    await Promise.all([a.opened, b.opened]);
    a.send('{not json');
    b.ws.send(Buffer.from([1, 2, 3]));
    assert.equal((await a.closed).code, 4002);
    assert.equal((await b.closed).code, 4002);
  });

  test('an invalid token → auth_failure invalid_token, then close 4003', async () => {
    for (const bad of ['garbage', await token({ sub: newUserId() }, 'wrong-secret-wrong-secret-wrong-secret-0123'), `${await tok(newUserId())}x`]) {
      usedTokens.push(bad);
      const client = openClient(srv.url);
      await client.opened;
      client.send({ type: 'auth', token: bad });
      const { code } = await client.closed;
      assert.equal(code, 4003);
      assert.deepEqual(client.frames, [{ type: 'auth_failure', reason: 'invalid_token' }]);
    }
  });

  test('an expired token → auth_failure token_expired, then close 4003', async () => {
    const client = openClient(srv.url);
    await client.opened;
    client.send({ type: 'auth', token: await tok(newUserId(), { ttl: -5 }) });
    assert.equal((await client.closed).code, 4003);
    assert.deepEqual(client.frames, [{ type: 'auth_failure', reason: 'token_expired' }]);
  });

  test('an oversize token → auth_failure token_too_large, then close 4003', async () => {
    const client = openClient(srv.url);
    await client.opened;
    const big = await tok(newUserId());
    usedTokens.push(big + 'A'.repeat(800));
    client.send({ type: 'auth', token: big + 'A'.repeat(800) }); // over jwt.maxTokenLength (600), under the pre-auth cap
    assert.equal((await client.closed).code, 4003);
    assert.deepEqual(client.frames, [{ type: 'auth_failure', reason: 'token_too_large' }]);
  });

  test('token expiry: no refresh → auth_failure token_expired + 4005; a refresh with the same sub outlives the first exp', async () => {
    const subA = newUserId();
    const subB = newUserId();
    const a = openClient(srv.url);
    const b = openClient(srv.url);
    await Promise.all([a.opened, b.opened]);
    const shortA = await shortToken(subA);
    const shortB = await shortToken(subB);
    a.send({ type: 'auth', token: shortA.token });
    b.send({ type: 'auth', token: shortB.token });
    await Promise.all([a.next((f) => f.type === 'auth_success'), b.next((f) => f.type === 'auth_success')]);
    // B refreshes with a long-lived token of the same identity.
    b.send({ type: 'auth', token: await tok(subB) });
    await b.nthOfType('auth_success', 2);
    // A's token expires: the server says so and closes with 4005.
    const closedA = await within(a.closed, 5000, 'expiry close');
    assert.equal(closedA.code, 4005);
    assert.deepEqual(a.frames.at(-1), { type: 'auth_failure', reason: 'token_expired' });
    assert.ok(Date.now() >= shortA.exp * 1000 - 50, 'closed at expiry, not before');
    // B's first token expired at (about) the same moment; B is still served.
    if (Date.now() < shortB.exp * 1000) await new Promise((r) => setTimeout(r, shortB.exp * 1000 - Date.now() + 20));
    b.send({ type: 'chat_message', recipientId: newUserId(), content: 'still here', clientMsgId: 'after-exp' });
    const sent = await b.next((f) => f.type === 'message_sent');
    assert.equal(sent.clientMsgId, 'after-exp');
    assert.equal(b.closeCode, undefined);
    await closeAll(b);
  });

  test('auth with deviceId and after: auth_success names the resume point and the last position', async () => {
    const sub = newUserId();
    const client = openClient(srv.url);
    await client.opened;
    client.send({ type: 'auth', token: await tok(sub), deviceId: 'laptop-1', after: 5 });
    const ok = await client.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
    // A new user's timeline is empty: the resume point is clamped to its last position.
    assert.deepEqual(ok, { type: 'auth_success', userId: sub, resumeAfter: 0, lastPos: 0 });
    // A refresh answers auth_success with the user id only: the stream goes on, it does not restart.
    client.send({ type: 'auth', token: await tok(sub), deviceId: 'laptop-1', after: 0 });
    assert.deepEqual(await client.nthOfType('auth_success', 2), { type: 'auth_success', userId: sub });
    await closeAll(client);
  });

  test('an auth frame with a malformed deviceId or after, or an unknown key → close 4002 without auth_success', async () => {
    for (const extra of [{ deviceId: '' }, { deviceId: 'has space' }, { deviceId: 'x'.repeat(65) }, { after: -1 }, { after: 1.5 }, { after: '1' }, { messageIds: [] }]) {
      const client = openClient(srv.url);
      await client.opened;
      client.send({ type: 'auth', token: await tok(newUserId()), ...extra });
      assert.equal((await client.closed).code, 4002, JSON.stringify(extra));
      assert.deepEqual(client.frames, [], JSON.stringify(extra));
    }
  });

  test('a refresh applies the new token claims: a user refreshed as muted can no longer send', async () => {
    const client = await authedClient(srv.url);
    client.send({ type: 'auth', token: await tok(client.userId, { role: 'muted' }) });
    await client.nthOfType('auth_success', 2);
    client.send({ type: 'chat_message', recipientId: newUserId(), content: 'after demotion' });
    const answer = await client.next((f) => f.type === 'error' || f.type === 'message_sent');
    assert.deepEqual(answer, { type: 'error', reason: 'forbidden' });
    await closeAll(client);
  });

  test('a refresh with another sub → auth_failure identity_change, close 4009', async () => {
    const client = await authedClient(srv.url);
    client.send({ type: 'auth', token: await tok(newUserId()) });
    assert.equal((await client.closed).code, 4009);
    assert.deepEqual(client.frames.at(-1), { type: 'auth_failure', reason: 'identity_change' });
  });

  test('an invalid refresh token closes an authenticated socket with 4003', async () => {
    const client = await authedClient(srv.url);
    client.send({ type: 'auth', token: 'not-a-token' });
    assert.equal((await client.closed).code, 4003);
    assert.deepEqual(client.frames.at(-1), { type: 'auth_failure', reason: 'invalid_token' });
  });
});

describe('JWKS unreachable', { timeout: 15_000 }, () => {
  let jwks: TestServer;
  let privateKey: KeyObject;
  before(async () => {
    const dead = createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const { port } = dead.address() as AddressInfo;
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    privateKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    jwks = await startServer({ jwt: { jwksUrl: `http://127.0.0.1:${port}/jwks` }, limits: { maxAuthFailures: 1 } });
  });
  after(async () => {
    await jwks.close();
  });

  test('auth_failure unavailable + close 4503, and it does not count towards the IP lockout', async () => {
    for (let i = 0; i < 3; i++) {
      const client = openClient(jwks.url);
      await client.opened; // a lockout would refuse this handshake with 429
      const t = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject(newUserId()).setExpirationTime('1h').sign(privateKey);
      usedTokens.push(t);
      client.send({ type: 'auth', token: t });
      assert.equal((await client.closed).code, 4503);
      assert.deepEqual(client.frames, [{ type: 'auth_failure', reason: 'unavailable' }]);
    }
    assert.deepEqual(securityLines(jwks).map((l) => l.reason), ['key_source_unavailable', 'key_source_unavailable', 'key_source_unavailable']);
  });
});

describe('shutdown while a handshake waits in the gate', { timeout: 15_000 }, () => {
  test('a handshake the gate admits after the drain began is refused with 503, and the server closes', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' };
    // A key server that holds its answer until told: the query-token check waits in the gate.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let asked!: () => void;
    const wasAsked = new Promise<void>((resolve) => (asked = resolve));
    const keys = createServer((_req, res) => {
      asked();
      void released.then(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys: [jwk] }));
      });
    });
    await new Promise<void>((resolve) => keys.listen(0, '127.0.0.1', resolve));
    const { port } = keys.address() as AddressInfo;
    const draining = await startServer({ allowQueryToken: true, jwt: { jwksUrl: `http://127.0.0.1:${port}/jwks` } });
    try {
      const t = await new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setSubject(newUserId()).setExpirationTime('1h').sign(privateKey);
      usedTokens.push(t);
      const status = handshakeStatus(`${draining.url}?token=${t}`).catch((err: unknown) => err);
      await within(wasAsked, 5000, 'the gate to ask for the keys');
      const closing = draining.close();
      release();
      assert.equal(await within(status, 5000, 'the handshake answer'), 503);
      await within(closing, 5000, 'the server to close');
    } finally {
      release();
      await draining.close();
      await new Promise((resolve) => keys.close(resolve));
    }
  });
});

describe('message pipeline', { timeout: 15_000 }, () => {
  test('every rejected frame gets one error reply and the connection survives', async () => {
    const client = await authedClient(srv.url);
    const peer = newUserId();
    const errors = (): unknown[] => client.frames.filter((f) => f.type === 'error');
    const nthError = async (n: number) => client.nthOfType('error', n);

    client.send('{"type":"chat_message",');
    assert.equal((await nthError(1)).reason, 'invalid_json');
    client.send(JSON.stringify([{ type: 'chat_message', recipientId: peer, content: 'x' }]));
    assert.equal((await nthError(2)).reason, 'invalid_format');
    client.send('"just a string"');
    assert.equal((await nthError(3)).reason, 'invalid_format');
    client.send({ type: 'self_destruct', content: MARKER });
    assert.equal((await nthError(4)).reason, 'unknown_type');
    client.send({ type: 'chat_message', recipientId: `${MARKER}-not-a-uuid`, content: MARKER, extra: MARKER });
    const invalid = await nthError(5);
    assert.equal(invalid.reason, 'validation_failed');
    const details = invalid.details as { path: string; rule: string }[];
    assert.ok(Array.isArray(details) && details.length > 0);
    assert.ok(details.some((d) => d.path === 'recipientId'));
    assert.ok(details.every((d) => Object.keys(d).sort().join() === 'path,rule'));
    assert.ok(!JSON.stringify(details).includes(MARKER), 'details never echo the payload');
    client.ws.send(Buffer.from('{"type":"chat_message"}'), { binary: true });
    assert.equal((await nthError(6)).reason, 'binary_not_supported');
    // The v1 ack form is gone in v2: a validation failure, not a silent no-op.
    client.send({ type: 'ack', messageIds: [newUserId()] });
    const v1Ack = await nthError(7);
    assert.equal(v1Ack.reason, 'validation_failed');
    assert.ok((v1Ack.details as { path: string }[]).some((d) => d.path === 'upTo'));
    client.send(`{"type":"chat_message","recipientId":"${peer}","content":"x","__proto__":{"polluted":1}}`);
    // Refused as an unknown key (protocol.md §3), and the prototype is untouched.
    assert.deepEqual(await nthError(8), { type: 'error', reason: 'validation_failed', details: [{ path: '', rule: 'unrecognized_keys' }] });
    const errorCount = errors().length;

    client.send({ type: 'chat_message', recipientId: peer, content: `${MARKER} ok`, clientMsgId: 'survivor' });
    const sent = await client.next((f) => f.type === 'message_sent' && f.clientMsgId === 'survivor');
    assert.ok(sent.id);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(errors().length, 8);
    assert.equal(errorCount, 8);
    assert.equal(client.closeCode, undefined);
    await closeAll(client);
  });

  test('a frame over maxMessageSize → close 1009', async () => {
    const client = await authedClient(srv.url);
    client.send({ type: 'chat_message', recipientId: newUserId(), content: 'x'.repeat(5000) });
    assert.equal((await client.closed).code, 1009);
  });

  test('a pre-auth frame over maxPreAuthMessageSize → close 1009', async () => {
    const client = openClient(srv.url);
    await client.opened;
    client.send({ type: 'auth', token: 'x'.repeat(2000) });
    assert.equal((await client.closed).code, 1009);
  });
});

describe('malformed frames on a raw socket', { timeout: 15_000 }, () => {
  /** Every raw socket the running test opened: destroyed after it, also when an assertion failed first. */
  const rawSockets: RawSocket[] = [];
  afterEach(async () => {
    await Promise.all(rawSockets.splice(0).map((raw) => raw.destroy()));
  });
  async function upgraded(): Promise<RawSocket> {
    const raw = await RawSocket.open(srv.port);
    rawSockets.push(raw);
    assert.equal(await raw.upgrade('/ws'), 101);
    return raw;
  }

  const protocolErrors = (): number => securityLines(srv).filter((l) => l.reason === 'protocol_error').length;
  let seenProtocolErrors = 0;
  before(() => {
    seenProtocolErrors = protocolErrors();
  });

  /**
   * After each malformed frame: the socket's error listener handled it (one `protocol_error` line:
   * without a listener `ws` would throw from the emitter and crash the process), and the server
   * still works end to end.
   */
  async function serverStillServes(): Promise<void> {
    await waitFor(() => protocolErrors() > seenProtocolErrors, 3000, 'a protocol_error security line');
    seenProtocolErrors = protocolErrors();
    const a = await authedClient(srv.url);
    a.send({ type: 'chat_message', recipientId: newUserId(), content: 'alive', clientMsgId: 'alive' });
    await a.next((f) => f.type === 'message_sent');
    await closeAll(a);
  }

  test('invalid UTF-8 in a text frame (before auth) → close 1007', async () => {
    const raw = await upgraded();
    raw.sendText(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]));
    assert.equal(await raw.closeCode(), 1007);
    await raw.destroy();
    await serverStillServes();
  });

  test('invalid UTF-8 after auth → close 1007', async () => {
    const raw = await upgraded();
    raw.sendText(JSON.stringify({ type: 'auth', token: await tok(newUserId()) }));
    await raw.until(() => raw.json().some((f) => f.type === 'auth_success'));
    raw.sendText(Buffer.from([0xed, 0xa0, 0x80])); // a UTF-16 surrogate encoded as UTF-8
    assert.equal(await raw.closeCode(), 1007);
    await raw.destroy();
    await serverStillServes();
  });

  test('an unmasked client frame → close 1002', async () => {
    const raw = await upgraded();
    raw.sendText('{"type":"auth","token":"x"}', { mask: false });
    assert.equal(await raw.closeCode(), 1002);
    await raw.destroy();
    await serverStillServes();
  });

  test('a huge declared length (2^62) → close 1009 without buffering', async () => {
    const before = process.memoryUsage().rss;
    const raw = await upgraded();
    raw.write(Buffer.from(new Uint8Array([0x81, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4])));
    assert.equal(await raw.closeCode(), 1009);
    await raw.destroy();
    // Just under maxPayload's limit of the 64-bit form: 2^53 - 1 and maxMessageSize + 1.
    for (const len of [2n ** 53n - 1n, 4097n]) {
      const r = await upgraded();
      r.sendText(Buffer.alloc(0), { declaredLength: len });
      assert.equal(await r.closeCode(), 1009, String(len));
      await r.destroy();
    }
    assert.ok(process.memoryUsage().rss - before < 200 * 1024 * 1024, 'nothing the size of the declared length was allocated');
    await serverStillServes();
  });

  test('before auth, a frame header declaring more than maxPreAuthMessageSize → close 1009 at once; after auth maxMessageSize applies', async () => {
    const preAuthLines = securityLines(srv).filter((l) => l.reason === 'pre_auth_too_large').length;
    // 2048 bytes declared (over the pre-auth cap of 1024, under maxMessageSize 4096), 100 sent:
    // refused from the header, not held until authTimeout (which would close with 4001).
    const raw = await upgraded();
    raw.write(encodeFrame(Buffer.alloc(2048, 0x61)).subarray(0, 8 + 100));
    assert.equal(await raw.closeCode(), 1009);
    await raw.destroy();
    // The cap counts a message's fragments together: the second one's header passes it.
    const frag = await upgraded();
    frag.write(encodeFrame(Buffer.alloc(600, 0x20), { fin: false, opcode: 1 }));
    frag.write(encodeFrame(Buffer.alloc(600, 0x20), { fin: true, opcode: 0 }).subarray(0, 8 + 100));
    assert.equal(await frag.closeCode(), 1009);
    await frag.destroy();
    // Once active, the same socket takes frames up to maxMessageSize.
    const active = await upgraded();
    active.sendText(JSON.stringify({ type: 'auth', token: await tok(newUserId()) }));
    await active.until(() => active.json().some((f) => f.type === 'auth_success'));
    active.sendText(JSON.stringify({ type: 'chat_message', recipientId: newUserId(), content: 'b'.repeat(2000), clientMsgId: 'big' }));
    await active.until(() => active.json().some((f) => f.type === 'message_sent'));
    await active.destroy();
    // Reported as the pre-auth cap, as when a complete frame over it is refused.
    assert.equal(securityLines(srv).filter((l) => l.reason === 'pre_auth_too_large' && l.code === 1009).length - preAuthLines, 2);
  });

  test('a fragment flood (many tiny continuation frames) is closed', async () => {
    const raw = await upgraded();
    const chunks: Buffer[] = [encodeFrame('{', { fin: false, opcode: 1 })];
    for (let i = 0; i < 500; i++) chunks.push(encodeFrame(' ', { fin: false, opcode: 0 }));
    raw.write(Buffer.concat(chunks));
    const code = await raw.closeCode();
    assert.equal(code, 1008);
    await raw.destroy();
    await serverStillServes();
  });

  test('a control frame with a bad opcode or an oversize ping → close 1002', async () => {
    const raw = await upgraded();
    raw.sendText('x', { opcode: 0x0b });
    assert.equal(await raw.closeCode(), 1002);
    await raw.destroy();
    const r2 = await upgraded();
    r2.sendText('x'.repeat(200), { opcode: 9 });
    assert.equal(await r2.closeCode(), 1002);
    await r2.destroy();
    await serverStillServes();
  });
});

// Tight timers get their own servers: on a loaded machine a 100 ms heartbeat would also close
// the healthy clients of every other test.
describe('auth timeout and heartbeat (short timers from config)', { timeout: 15_000 }, () => {
  let timers: TestServer;
  let lenient: TestServer;
  before(async () => {
    [timers, lenient] = await Promise.all([
      startServer({ authTimeout: 200, heartbeatInterval: 50, heartbeatTimeout: 100 }),
      startServer({ heartbeatInterval: 50, heartbeatTimeout: 500 }),
    ]);
  });
  after(async () => {
    await Promise.all([timers.close(), lenient.close()]);
  });

  test('no auth frame within authTimeout → close 4001, and the socket is released', async () => {
    const client = openClient(timers.url);
    await client.opened;
    const started = Date.now();
    assert.equal((await within(client.closed, 5000, '4001')).code, 4001);
    assert.ok(Date.now() - started >= 150, 'not before authTimeout');
    assert.equal(client.frames.length, 0);
    await waitFor(() => isZero(timers), 3000, 'released');
  });

  test('a client that never answers pings → close 4000 and the server-side socket is gone', async () => {
    const client = await authedClient(timers.url, newUserId(), {}, { autoPong: false });
    assert.equal(timers.server.stats().open, 1);
    const { code } = await within(client.closed, 5000, 'heartbeat close');
    assert.equal(code, 4000);
    await waitFor(() => timers.server.stats().open === 0, 3000, 'server-side socket gone');
    await waitFor(() => isZero(timers), 3000, 'everything released');
    const reasons = securityLines(timers).map((l) => l.reason);
    assert.deepEqual(reasons, ['auth_timeout', 'heartbeat_timeout']);
    assert.equal(securityLines(timers)[1]?.code, 4000);
  });

  test('a dead peer (answers neither pings nor the close frame) is destroyed after 4000', async () => {
    const raw = await RawSocket.open(timers.port);
    assert.equal(await raw.upgrade('/ws'), 101);
    raw.sendText(JSON.stringify({ type: 'auth', token: await tok(newUserId()) }));
    await raw.until(() => raw.json().some((f) => f.type === 'auth_success'));
    // From here on the raw socket reads but never writes: no pong, no close reply.
    await within(raw.closed, 5000, 'server destroys the TCP connection');
    assert.ok(raw.frames.some((f) => f.opcode === 9), 'pinged first');
    assert.equal(await raw.closeCode(), 4000);
    await waitFor(() => isZero(timers), 3000, 'everything released');
  });

  test('pongs that echo no ping of ours (sent unasked) do not keep a client that never answers open → 4000', async () => {
    const raw = await RawSocket.open(timers.port);
    assert.equal(await raw.upgrade('/ws'), 101);
    raw.sendText(JSON.stringify({ type: 'auth', token: await tok(newUserId()) }));
    await raw.until(() => raw.json().some((f) => f.type === 'auth_success'));
    // Unsolicited pongs (empty, or a payload of its own) faster than the heartbeat, never an echo.
    const unasked = setInterval(() => raw.write(encodeFrame(Buffer.from(String(Date.now())), { opcode: 10 })), 20);
    try {
      await within(raw.closed, 5000, 'closed despite its pongs');
    } finally {
      clearInterval(unasked);
    }
    assert.equal(await raw.closeCode(), 4000);
    await waitFor(() => isZero(timers), 3000, 'everything released');
  });

  test('nor do pongs guessed from a ping read once (the payload is random, not the server clock) → 4000', async () => {
    const client = await authedClient(timers.url, newUserId(), {}, { autoPong: false });
    // One ping is read; from then on the client "stops reading" and guesses, as it could when the
    // payload was the node's clock: the values around the first payload, moved by the time passed.
    const first = await within(new Promise<Buffer>((resolve) => client.ws.once('ping', resolve)), 3000, 'first ping');
    const startedAt = performance.now();
    const guess = setInterval(() => {
      if (client.ws.readyState !== client.ws.OPEN) return;
      const est = Number(first.toString('latin1')) + Math.floor(performance.now() - startedAt);
      for (let v = est - 60; v <= est; v++) client.ws.pong(Number.isFinite(v) ? String(v) : first);
    }, 25);
    try {
      assert.equal((await within(client.closed, 5000, 'heartbeat close')).code, 4000);
    } finally {
      clearInterval(guess);
    }
  });

  test('a client that answers pings stays connected past several heartbeat timeouts', async () => {
    const client = await authedClient(lenient.url);
    // Count pings on the client side (events, not time): 15 pings ≈ 1.5 × heartbeatTimeout.
    let pings = 0;
    await within(new Promise<void>((resolve) => client.ws.on('ping', () => ++pings === 15 && resolve())), 5000, 'pings');
    assert.equal(client.closeCode, undefined);
    client.send({ type: 'chat_message', recipientId: newUserId(), content: 'alive', clientMsgId: 'hb' });
    await client.next((f) => f.type === 'message_sent');
    await closeAll(client);
  });
});

describe('token expiry honours jwt.clockTolerance (as verification does)', { timeout: 15_000 }, () => {
  let lenient: TestServer;
  before(async () => {
    // Pings every 100 ms: each one is a turn of the timer wheel that also runs the expiry check.
    lenient = await startServer({ heartbeatInterval: 100, heartbeatTimeout: 10_000, jwt: { secret: TEST_SECRET, clockTolerance: 3 } });
  });
  after(async () => {
    await lenient.close();
  });

  /** A token whose `exp` passed 1 to 2 s ago: inside the 3 s tolerance. */
  async function justExpired(sub: string): Promise<string> {
    const exp = Math.floor(Date.now() / 1000) - 1;
    const t = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime(exp).sign(createSecretKey(Buffer.from(TEST_SECRET)));
    usedTokens.push(t);
    return t;
  }

  /** The session outlives two wheel turns and answers a request; then the tolerance ends and it is closed 4005. */
  async function livesUntilTolerance(client: TestClient): Promise<void> {
    await new Promise<void>((resolve) => {
      let pings = 0;
      client.ws.on('ping', () => ++pings === 2 && resolve());
      void client.closed.then(() => resolve());
    });
    assert.equal(client.closeCode, undefined, `closed right after auth_success: ${JSON.stringify(client.frames.map((f) => f.type))}`);
    client.send({ type: 'ping', requestId: 'still-here' });
    assert.equal((await client.next((f) => f.type === 'pong')).requestId, 'still-here');
    assert.equal((await client.closed).code, 4005);
    assert.deepEqual(client.frames.at(-1), { type: 'auth_failure', reason: 'token_expired' });
  }

  test('a token accepted at auth within the tolerance: the session lives until exp + tolerance', async () => {
    const client = openClient(lenient.url);
    await client.opened;
    client.send({ type: 'auth', token: await justExpired(newUserId()) });
    await client.nextOfType('auth_success');
    await livesUntilTolerance(client);
  });

  test('a refresh accepted within the tolerance: the session lives until its exp + tolerance', async () => {
    const client = await authedClient(lenient.url);
    client.send({ type: 'auth', token: await justExpired(client.userId) });
    await client.nthOfType('auth_success', 2);
    await livesUntilTolerance(client);
  });
});

describe('empty allowedOrigins: the server\'s own origins', { timeout: 15_000 }, () => {
  test('port 0: the origins of the bound port open; another port is refused with 403', async () => {
    const own = await startServer({ allowedOrigins: [] });
    try {
      for (const origin of [`http://localhost:${own.port}`, `http://127.0.0.1:${own.port}`]) {
        const c = openClient(own.url, { origin });
        await c.opened;
        await closeAll(c);
      }
      for (const origin of ['http://localhost:0', `http://localhost:${own.port + 1}`, `https://127.0.0.1:${own.port}`]) {
        assert.equal(await handshakeStatus(own.url, { origin }), 403, origin);
      }
    } finally {
      await own.close();
    }
  });

  test('port 80: the server is created (its own origin leaves the default port out)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rampart-own-origin-'));
    try {
      const config = parseConfig({ port: 80, host: '127.0.0.1', storage: `sqlite:${join(dir, 't.db')}`, dataDir: dir, logLevel: 'silent', jwt: { secret: TEST_SECRET }, allowedOrigins: [] });
      const server = await createRampartServer({ config, demoPage: false }); // never listens: construction is what failed
      try {
        assert.deepEqual(server.stats(), { open: 0, unauthenticated: 0, unauthenticatedIps: 0, users: 0 }, 'a working server, serving nobody yet');
      } finally {
        await server.close();
      }
      // What a browser sends for a page on port 80 (the port never named) is the origin let in.
      const policy = serverOriginPolicy([], config.allowMissingOrigin, { secure: false, port: config.port });
      for (const origin of ['http://localhost', 'http://127.0.0.1', 'http://[::1]']) assert.equal(checkOrigin(policy, [origin]), 'allowed', origin);
      assert.notEqual(checkOrigin(policy, ['http://localhost:8080']), 'allowed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('HTTP', { timeout: 15_000 }, () => {
  test('a half-sent HTTP request is cut off after headersTimeout', async () => {
    const raw = await RawSocket.open(srv.port);
    const started = Date.now();
    raw.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    await within(raw.closed, 5000, 'headers timeout');
    assert.ok(Date.now() - started >= 250, 'not before the timeout');
    const raw2 = await RawSocket.open(srv.port);
    raw2.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n');
    await within(raw2.closed, 5000, 'headers timeout (upgrade)');
  });

  test('request headers over limits.maxHeaderSize: 431, on plain routes and upgrades', async () => {
    const big = { 'x-padding': 'p'.repeat(5000) };
    assert.equal((await fetch(`${srv.httpUrl}/healthz`, { headers: big })).status, 431);
    assert.equal(await handshakeStatus(srv.url, { headers: big }), 431);
    assert.equal((await fetch(`${srv.httpUrl}/healthz`, { headers: { 'x-padding': 'p'.repeat(3000) } })).status, 200);
  });

  test('/healthz and /readyz answer 200', async () => {
    const health = await fetch(`${srv.httpUrl}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const ready = await fetch(`${srv.httpUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready' });
  });
});

describe('release and logs', { timeout: 15_000 }, () => {
  test('after every close path above, nothing is held: stats and per-IP slots are zero', async () => {
    await waitFor(() => isZero(srv), 3000, 'all counters back to zero');
    assert.deepEqual(srv.server.stats(), { open: 0, unauthenticated: 0, unauthenticatedIps: 0, users: 0 });
  });

  test('logs hold no token, no query string, no message content; every refusal has one security line', async () => {
    const all = srv.logs.join('\n');
    assert.ok(usedTokens.length > 10);
    for (const t of usedTokens) {
      assert.ok(!all.includes(t), 'a token reached the logs');
      assert.ok(!all.includes(t.split('.')[2] as string), 'a token signature reached the logs');
    }
    assert.ok(!all.includes('token='), 'a query string reached the logs');
    assert.ok(!/\?(x|token)=/.test(all), 'a query string reached the logs');
    assert.ok(!all.includes(MARKER), 'message content reached the logs');
    const lines = securityLines(srv);
    for (const line of lines) assert.equal(typeof line.reason, 'string');
    const reasons = new Set(lines.map((l) => l.reason));
    for (const expected of ['origin_malformed', 'origin_not_allowed', 'origin_duplicate', 'query_token_not_allowed', 'not_authenticated', 'invalid_token', 'token_expired', 'identity_change', 'invalid_json', 'invalid_format', 'unknown_type', 'validation_failed', 'binary_frame', 'pre_auth_too_large', 'protocol_error']) {
      assert.ok(reasons.has(expected), `no security line for ${expected}: ${[...reasons].join(', ')}`);
    }
  });

  test('one security line per refusal, with reason, ip and user when known', async () => {
    const quiet = await startServer({ jwt: { secret: TEST_SECRET, clockTolerance: 0 }, allowedOrigins: [ALLOWED] });
    try {
      assert.equal(await handshakeStatus(quiet.url, { origin: 'https://evil.com' }), 403);
      assert.equal(await handshakeStatus(`${quiet.url}?token=${await tok(newUserId())}`), 401);
      const first = openClient(quiet.url);
      await first.opened;
      first.send({ type: 'auth', token: 'nope' });
      await first.closed;
      const user = await authedClient(quiet.url);
      user.send('{oops');
      await user.next((f) => f.type === 'error');
      user.send({ type: 'chat_message', recipientId: newUserId(), content: MARKER });
      await user.next((f) => f.type === 'message_sent');
      await closeAll(user);
      await waitFor(() => isZero(quiet), 3000, 'released');
      const lines = securityLines(quiet);
      assert.deepEqual(lines.map((l) => l.reason), ['origin_not_allowed', 'query_token_not_allowed', 'invalid_token', 'invalid_json']);
      assert.deepEqual(lines.map((l) => l.ip), ['127.0.0.1', '127.0.0.1', '127.0.0.1', '127.0.0.1']);
      assert.equal(lines[0]?.code, 403);
      assert.equal(lines[1]?.code, 401);
      assert.equal(lines[2]?.code, 4003);
      assert.equal(lines[3]?.userId, user.userId);
      const all = quiet.logs.join('\n');
      assert.ok(!all.includes(MARKER) && !all.includes('token=') && !all.includes('nope'));
    } finally {
      await quiet.close();
    }
  });
});
