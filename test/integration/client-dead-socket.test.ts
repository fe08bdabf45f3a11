/**
 * A Node client (createNodeClient, the shipped `ws` factory) whose connection died silently (no
 * FIN, no RST: a frozen TCP proxy). docs/client.md: `close()` closes the socket with 1000 and
 * cancels every timer — nothing keeps the process alive afterwards; a connection that stops
 * answering is given up. The SDK only called `ws.close(1000)`: `ws` then waited for the peer's
 * close frame for its `closeTimeout` (30 s) with the TCP socket open. Now a given-up connection is
 * terminated at once, and a close frame is waited for 1 s at most.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createNodeClient } from '../../src/client/node.js';
import { signDevToken } from '../../src/auth/dev-token.js';
import { startServer, startTcpProxy, newUserId, TEST_SECRET, waitFor } from '../helpers/harness.js';

/** Records every `ws` socket the SDK creates (a spy on the prototype; the SDK's own factory is used). */
function spySockets(): { sockets: Set<WebSocket>; restore(): void } {
  const sockets = new Set<WebSocket>();
  const orig = WebSocket.prototype.send;
  WebSocket.prototype.send = function (this: WebSocket, ...args: Parameters<WebSocket['send']>) {
    if (this.url) sockets.add(this); // client sockets only (the server's own have no url)
    return orig.apply(this, args);
  } as WebSocket['send'];
  return { sockets, restore: () => void (WebSocket.prototype.send = orig) };
}

/** Resolves true when `ws` emits 'close' within `ms`, false otherwise (timer cleared either way). */
function closedWithin(ws: WebSocket, ms: number): Promise<boolean> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    ws.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

test('close() on a connection that died silently releases the socket at once (no 30 s ws close timer left)', { timeout: 30_000 }, async () => {
  const srv = await startServer();
  const proxy = await startTcpProxy('127.0.0.1', srv.port);
  const spy = spySockets();
  const id = newUserId();
  const client = createNodeClient({ url: `ws://127.0.0.1:${proxy.port}/ws`, token: () => signDevToken(TEST_SECRET, { sub: id, ttl: 3600 }), pingIntervalMs: 0 });
  let ws: WebSocket | undefined;
  try {
    await client.connect();
    assert.equal(spy.sockets.size, 1);
    ws = [...spy.sockets][0]!;
    proxy.freeze();
    client.close();
    const released = await closedWithin(ws, 3000);
    assert.ok(released, `the dead socket is still ${['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'][ws.readyState]} 3 s after close(): ws keeps it and a 30 s timer alive`);
  } finally {
    spy.restore();
    client.close();
    ws?.terminate();
    await proxy.close();
    await srv.close();
  }
});

test('a connection given up for heartbeat_timeout is released at once, not left CLOSING for 30 s', { timeout: 30_000 }, async () => {
  const srv = await startServer();
  const proxy = await startTcpProxy('127.0.0.1', srv.port);
  const spy = spySockets();
  const id = newUserId();
  const reasons: string[] = [];
  const client = createNodeClient({
    url: `ws://127.0.0.1:${proxy.port}/ws`,
    token: () => signDevToken(TEST_SECRET, { sub: id, ttl: 3600 }),
    pingIntervalMs: 200,
    pongTimeoutMs: 200,
    backoff: { baseMs: 50, maxMs: 200 },
  });
  client.on('disconnected', (d) => reasons.push(d.reason));
  let first: WebSocket | undefined;
  try {
    await client.connect();
    first = [...spy.sockets][0]!;
    proxy.freeze();
    await waitFor(() => reasons.includes('heartbeat_timeout'), 10_000, 'the dead connection to be given up');
    const released = await closedWithin(first, 3000);
    assert.ok(released, `the given-up socket is still ${['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'][first.readyState]} 3 s after heartbeat_timeout`);
  } finally {
    spy.restore();
    client.close();
    for (const s of spy.sockets) s.terminate();
    await proxy.close();
    await srv.close();
  }
});

// Control (passes): on a healthy connection close() is answered by the server's close frame at once,
// so the lingering socket in the two probes above is due to the dead path, not to the server.
test('control: close() on a healthy connection releases the socket promptly', { timeout: 30_000 }, async () => {
  const srv = await startServer();
  const spy = spySockets();
  const id = newUserId();
  const client = createNodeClient({ url: srv.url, token: () => signDevToken(TEST_SECRET, { sub: id, ttl: 3600 }), pingIntervalMs: 0 });
  try {
    await client.connect();
    const ws = [...spy.sockets][0]!;
    client.close();
    assert.ok(await closedWithin(ws, 3000));
  } finally {
    spy.restore();
    client.close();
    for (const s of spy.sockets) s.terminate();
    await srv.close();
  }
});
