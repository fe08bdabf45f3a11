/**
 * docs/protocol.md §6: an `ack` followed by a reconnect on the same node never replays what was
 * acked — also when the ack arrived while the session held its frames (a token refresh being
 * checked: here a key rotation makes it refetch the JWKS) and the client closed before the refresh
 * was done. Before, Session.onClose dropped its queue with the ack in it, and the device's next
 * connection replayed what it had acknowledged. Queued acks now act at close.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT, exportJWK } from 'jose';
import { startServer, openClient, newUserId, closeAll, type TestClient } from '../helpers/harness.js';

const k1 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const k2 = generateKeyPairSync('rsa', { modulusLength: 2048 });
const mint = (key: KeyObject, kid: string, sub: string): Promise<string> =>
  new SignJWT({}).setProtectedHeader({ alg: 'RS256', kid }).setSubject(sub).setIssuedAt().setExpirationTime('10m').sign(key);

test('an ack queued behind a token refresh is not lost when the client closes', { timeout: 20_000 }, async () => {
  const jwk1 = { ...(await exportJWK(k1.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  const jwk2 = { ...(await exportJWK(k2.publicKey)), kid: 'k2', alg: 'RS256', use: 'sig' };
  let fetches = 0;
  let slowSent!: () => void;
  const slowDone = new Promise<void>((resolve) => (slowSent = resolve));
  const jwks: Server = createServer((_req, res: ServerResponse) => {
    fetches++;
    if (fetches === 1) return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk1] }));
    // The rotation's refetch answers after a while (an identity provider under load).
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk1, jwk2] }));
      slowSent();
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
    const [s, v] = [newUserId(), newUserId()];
    const sender = (await connect(s, 'ds')).c;
    const first = await connect(v, 'phone');
    sender.send({ type: 'chat_message', recipientId: v, content: 'hello', clientMsgId: 'm1' });
    const msg = await first.c.nextOfType('chat_message');
    const pos = msg.pos as number;
    // Refresh with the rotated key (slow refetch), then ack what was received and close, as the SDK does.
    first.c.send({ type: 'auth', token: await mint(k2.privateKey, 'k2', v) });
    first.c.send({ type: 'ack', upTo: pos });
    await first.c.close();
    await slowDone;
    const again = await connect(v, 'phone');
    assert.equal(again.auth.resumeAfter, pos, `the device acked ${pos} before closing, but resumes after ${String(again.auth.resumeAfter)}`);
  } finally {
    await closeAll(...clients);
    await srv.close();
    jwks.closeAllConnections();
    await new Promise<void>((resolve) => jwks.close(() => resolve()));
  }
});
