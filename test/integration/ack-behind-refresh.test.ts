/**
 * docs/protocol.md §6: an `ack` followed by a reconnect on the same node never replays what was
 * acked — also when the ack arrived while the session held its frames (a token refresh being
 * checked: here a key rotation makes it refetch the JWKS) and the connection closed before the
 * refresh was done, whoever closed it: the client, or the server (here `end_session` from the
 * user's other session). Before, the session dropped its queue with the ack in it, and the
 * device's next connection replayed what it had acknowledged. Queued acks now act at close.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT, exportJWK } from 'jose';
import { startServer, openClient, newUserId, closeAll, type TestClient, type TestServer } from '../helpers/harness.js';

const k1 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const k2 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const mint = (key: KeyObject, kid: string, sub: string): Promise<string> =>
  new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid }).setSubject(sub).setIssuedAt().setExpirationTime('10m').sign(key);

interface Setup {
  srv: TestServer;
  /** The rotation's refetch was asked for: the refresh is being checked. */
  refetchAsked: Promise<void>;
  /** The rotation's refetch has been answered (it answers 800 ms after it was asked). */
  refetched: Promise<void>;
  connect(sub: string, deviceId: string): Promise<{ c: TestClient; auth: Record<string, unknown> }>;
}

/** A server whose JWKS first holds k1 only; the refetch a k2 token causes answers late, with both. */
async function withRotation(fn: (s: Setup) => Promise<void>): Promise<void> {
  const jwk1 = { ...(await exportJWK(k1.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  const jwk2 = { ...(await exportJWK(k2.publicKey)), kid: 'k2', alg: 'RS256', use: 'sig' };
  let fetches = 0;
  let asked!: () => void;
  const refetchAsked = new Promise<void>((resolve) => (asked = resolve));
  let answered!: () => void;
  const refetched = new Promise<void>((resolve) => (answered = resolve));
  const jwks: Server = createServer((_req, res: ServerResponse) => {
    fetches++;
    if (fetches === 1) return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk1] }));
    asked();
    // The rotation's refetch answers after a while (an identity provider under load).
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk1, jwk2] }));
      answered();
    }, 800);
  });
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`;
  const srv = await startServer({ jwt: { jwksUrl: url, jwksRefetchIntervalMs: 0 } });
  const clients: TestClient[] = [];
  const connect = async (sub: string, deviceId: string): Promise<{ c: TestClient; auth: Record<string, unknown> }> => {
    const c = openClient(srv.url);
    clients.push(c);
    await c.opened;
    c.send({ type: 'auth', token: await mint(k1.privateKey, 'k1', sub), deviceId });
    const auth = await c.next((f) => f.type === 'auth_success' || f.type === 'auth_failure');
    assert.equal(auth.type, 'auth_success');
    return { c, auth };
  };
  try {
    await fn({ srv, refetchAsked, refetched, connect });
  } finally {
    await closeAll(...clients);
    await srv.close();
    jwks.closeAllConnections();
    await new Promise<void>((resolve) => jwks.close(() => resolve()));
  }
}

/** The sender's message reaches v's phone; returns its position. */
async function received(connect: Setup['connect'], v: string, phone: TestClient): Promise<number> {
  const sender = (await connect(newUserId(), 'ds')).c;
  sender.send({ type: 'chat_message', recipientId: v, content: 'hello', clientMsgId: 'm1' });
  const msg = await phone.nextOfType('chat_message');
  return msg.pos as number;
}

test('an ack queued behind a token refresh is not lost when the client closes', { timeout: 20_000 }, async () => {
  await withRotation(async ({ refetched, connect }) => {
    const v = newUserId();
    const first = await connect(v, 'phone');
    const pos = await received(connect, v, first.c);
    // Refresh with the rotated key (slow refetch), then ack what was received and close, as the SDK does.
    first.c.send({ type: 'auth', token: await mint(k2.privateKey, 'k2', v) });
    first.c.send({ type: 'ack', upTo: pos });
    await first.c.close();
    await refetched;
    const again = await connect(v, 'phone');
    assert.equal(again.auth.resumeAfter, pos, `the device acked ${pos} before closing, but resumes after ${String(again.auth.resumeAfter)}`);
  });
});

test('an ack queued behind a token refresh is not lost when the server closes the session (end_session)', { timeout: 20_000 }, async () => {
  await withRotation(async ({ refetchAsked, refetched, connect }) => {
    const v = newUserId();
    const phone = await connect(v, 'phone');
    const laptop = await connect(v, 'laptop');
    const pos = await received(connect, v, phone.c);
    laptop.c.send({ type: 'list_sessions', requestId: 'l' });
    const listed = await laptop.c.next((f) => f.requestId === 'l');
    const phoneSession = (listed.sessions as { sessionId: string; current: boolean }[]).find((s) => !s.current)!;
    phone.c.send({ type: 'auth', token: await mint(k2.privateKey, 'k2', v) });
    phone.c.send({ type: 'ack', upTo: pos });
    // The ack (sent with the refresh, read with it) waits behind it when the user's other session ends this one.
    await refetchAsked;
    laptop.c.send({ type: 'end_session', sessionId: phoneSession.sessionId, requestId: 'e' });
    await laptop.c.next((f) => f.requestId === 'e');
    await refetched;
    const again = await connect(v, 'phone');
    assert.equal(again.auth.resumeAfter, pos, `the device acked ${pos} before its session was ended, but resumes after ${String(again.auth.resumeAfter)}`);
  });
});

test('an ack that overflows the frame queue behind a token refresh still counts (closed 4029 queue_overflow)', { timeout: 20_000 }, async () => {
  await withRotation(async ({ refetched, connect }) => {
    const v = newUserId();
    const first = await connect(v, 'phone');
    const pos = await received(connect, v, first.c);
    first.c.send({ type: 'auth', token: await mint(k2.privateKey, 'k2', v) });
    // limits.maxQueuedFrames (32) frames wait behind the refresh; the ack is the one past them.
    for (let i = 0; i < 32; i++) first.c.send({ type: 'ping' });
    first.c.send({ type: 'ack', upTo: pos });
    assert.equal((await first.c.closed).code, 4029);
    await refetched;
    const again = await connect(v, 'phone');
    assert.equal(again.auth.resumeAfter, pos, `the device acked ${pos} as its queue overflowed, but resumes after ${String(again.auth.resumeAfter)}`);
  });
});
