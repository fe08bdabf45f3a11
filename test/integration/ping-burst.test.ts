/**
 * A burst of WebSocket pings from a client. docs/protocol.md §7: pending auto-pongs are bounded by
 * `limits.maxPendingAutoPongs` (8), and pings past it are ignored — the connection stays. ws's own
 * auto-pong terminated the socket instead (no close frame, no log) as soon as nine pings arrived
 * in one read, since their pongs are written only when the socket is flushed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, token, newUserId, type TestServer } from '../helpers/harness.js';
import { RawSocket, encodeFrame } from '../helpers/raw-ws.js';

let srv: TestServer;
before(async () => {
  srv = await startServer({});
});
after(async () => {
  await srv.close();
});

test('8 pings in one write (the limit itself) keep the session', async () => {
  const raw = await RawSocket.open(srv.port);
  try {
    assert.equal(await raw.upgrade('/ws'), 101);
    raw.sendText(JSON.stringify({ type: 'auth', token: await token({ sub: newUserId() }) }));
    await raw.until(() => raw.json().some((f) => f.type === 'auth_success'));
    raw.write(Buffer.concat(Array.from({ length: 8 }, () => encodeFrame('p', { opcode: 9 }))));
    raw.sendText(JSON.stringify({ type: 'ping', requestId: 'after-8' }));
    await raw.until(() => raw.json().some((f) => f.type === 'pong'));
  } finally {
    await raw.destroy();
  }
});

test('9 pings in one write (limits.maxPendingAutoPongs 8) are ignored past the 8th, the session stays open and answers', async () => {
  const raw = await RawSocket.open(srv.port);
  try {
    assert.equal(await raw.upgrade('/ws'), 101);
    raw.sendText(JSON.stringify({ type: 'auth', token: await token({ sub: newUserId() }) }));
    await raw.until(() => raw.json().some((f) => f.type === 'auth_success'));
    // Nine pings in one TCP write: more than maxPendingAutoPongs (8) owed at once.
    raw.write(Buffer.concat(Array.from({ length: 9 }, () => encodeFrame('p', { opcode: 9 }))));
    // Then an application-level ping: the session must still answer it ("pings ignored", not a close).
    raw.sendText(JSON.stringify({ type: 'ping', requestId: 'after-burst' }));
    await raw
      .until(() => raw.json().some((f) => f.type === 'pong'))
      .catch(() => assert.fail(`the connection was dropped after a 9-ping burst (close frame: ${raw.frames.some((f) => f.opcode === 8)}); docs say further pings are ignored`));
  } finally {
    await raw.destroy();
  }
});

test('a flood of 50 pings in one write gets 8 pongs; later pings are answered again', async () => {
  const raw = await RawSocket.open(srv.port);
  try {
    assert.equal(await raw.upgrade('/ws'), 101);
    raw.sendText(JSON.stringify({ type: 'auth', token: await token({ sub: newUserId() }) }));
    await raw.until(() => raw.json().some((f) => f.type === 'auth_success'));
    raw.write(Buffer.concat(Array.from({ length: 50 }, () => encodeFrame('p', { opcode: 9 }))));
    raw.sendText(JSON.stringify({ type: 'ping', requestId: 'fence-1' }));
    await raw.until(() => raw.json().some((f) => f.requestId === 'fence-1'));
    const pongs = (): number => raw.frames.filter((f) => f.opcode === 10).length;
    assert.equal(pongs(), 8, 'the bound, no more');
    // Once those pongs are out, the client is owed nothing: its next ping is answered.
    raw.write(encodeFrame('q', { opcode: 9 }));
    await raw.until(() => pongs() === 9);
  } finally {
    await raw.destroy();
  }
});
